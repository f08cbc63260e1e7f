"""Benchmark suites: the field's collections (ADBench, the UCR anomaly archive, the magnetic
tile photographs, one-class MNIST / Fashion-MNIST) run cell by cell for any registered
detector, resumable, with the published results beside ours.

    from jax_anomaly import suites
    table = suites.run_suite("adbench", detectors=["knn"], seeds=[0], out="results/suites/adbench")
    print(table.means())
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from jax_anomaly.persistence import atomic_write
from jax_anomaly.suites import adbench, one_class, ucr
from jax_anomaly.suites import images as image_suite
from jax_anomaly.suites.cells import CellStore, run_cells
from jax_anomaly.suites.tables import Published, Table, build_table, markdown, write_outputs


@dataclasses.dataclass(frozen=True)
class Suite:
    """A collection and its protocol.

    Attributes:
      name: ``jax-anomaly suite NAME``.
      description: one line.
      metric: the table's metric (a key of each cell's metrics); ``scale`` multiplies it
        (AUROC x100, as the papers print it).
      detectors, seeds: the defaults.
      options: the protocol's options and their defaults.
      sets: ``options -> set names``.
      run_group: ``(detector, set, seeds, options) -> {seed: metrics}``.
      published: ``options -> Published`` (None: nothing published to compare).
      extra_metrics: more metrics kept in the table's JSON (means over seeds).
      seeds_together: ``run_group`` gets every missing seed of a set at once (seeds of a deep
        detector on the model axis); False: one seed a call, each cell recorded as it ends
        (long cells that run one after another: an interruption loses one, not five).
    """

    name: str
    description: str
    metric: str
    scale: float
    detectors: tuple[str, ...]
    seeds: tuple[int, ...]
    options: dict
    sets: Callable[[dict], list[str]]
    run_group: Callable[..., dict]
    published: Callable[[dict], Published | None]
    extra_metrics: tuple[str, ...] = ()
    digits: int = 1
    seeds_together: bool = True


SUITES = {
    "adbench": Suite(
        "adbench",
        "ADBench's classical tabular sets, DTE's semi-supervised (or unsupervised) protocol",
        "auroc",
        100.0,
        adbench.DETECTORS,
        adbench.SEEDS,
        adbench.OPTIONS,
        adbench.sets,
        adbench.run_group,
        adbench.published,
        ("auprc",),
    ),
    "ucr": Suite(
        "ucr",
        "the UCR anomaly archive: accuracy of the top-scored test point, and VUS-PR",
        "accuracy",
        1.0,
        ucr.DETECTORS,
        ucr.SEEDS,
        ucr.OPTIONS,
        ucr.sets,
        ucr.run_group,
        ucr.published,
        ("vus_pr", "auroc", "window"),
        digits=3,
    ),
    "magnetic_tile": Suite(
        "magnetic_tile",
        "magnetic tile defect photographs: image AUROC, pixel AUROC and PRO against the masks",
        "image_auroc",
        100.0,
        image_suite.DETECTORS,
        image_suite.SEEDS,
        image_suite.OPTIONS,
        image_suite.sets,
        image_suite.run_group,
        image_suite.published,
        ("pixel_auroc", "pro", "kind_auroc", "kind_pixel_auroc", "kind_pro", "part_auroc"),
        seeds_together=False,
    ),
    "one_class": Suite(
        "one_class",
        "one-class MNIST and Fashion-MNIST: each class normal in turn, AUROC per class",
        "auroc",
        100.0,
        one_class.DETECTORS,
        one_class.SEEDS,
        one_class.OPTIONS,
        one_class.sets,
        one_class.run_group,
        one_class.published,
    ),
}


def get_suite(name: str) -> Suite:
    try:
        return SUITES[name]
    except KeyError:
        raise ValueError(f"unknown suite '{name}'; expected one of {', '.join(SUITES)}") from None


def suite_options(suite: Suite, options: dict | None) -> dict:
    """The suite's default options with ``options`` over them (unknown names are an error)."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(suite.options))
    if unknown:
        raise ValueError(f"suite '{suite.name}' has no option(s) {unknown}; options: {sorted(suite.options)}")
    return {**suite.options, **options}


def select_sets(suite: Suite, options: dict, sets: Sequence[str] | None, every: int = 1) -> list[str]:
    """The suite's sets, or the named ones (each must exist), then every ``every``-th."""
    available = suite.sets(options)
    if sets:
        wanted = [str(s) for s in sets]
        missing = [s for s in wanted if s not in available]
        if missing:
            raise ValueError(f"suite '{suite.name}' has no set(s) {missing}; sets: {', '.join(available)}")
        available = wanted
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    return available[::every]


def table_header(suite: Suite, options: dict, out: Path) -> str:
    return (
        f"# Suite `{suite.name}`: {suite.description}\n\n"
        f"Options: {options}. Cells in `{out / 'cells'}`; rerun the same command to continue it.\n"
    )


def run_suite(
    name: str,
    *,
    detectors: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    sets: Sequence[str] | None = None,
    every: int = 1,
    out: str | Path | None = None,
    options: dict | None = None,
    progress: bool = True,
    retry_failed: bool = False,
) -> Table:
    """Runs suite ``name`` (its missing cells) and writes its table.

    Args:
      name: ``adbench``, ``ucr``, ``magnetic_tile`` or ``one_class``.
      detectors: registered detectors (time series baselines too, for ``ucr``); None: the
        suite's defaults.
      seeds: None: the suite's defaults.
      sets: a subset of the suite's sets by name; ``every``: then every k-th of them.
      out: the suite's folder (cells, ``table.md``, ``table.json``, ``ranks.png``,
        ``index.html``); None: ``results/suites/<name>``.
      options: the suite's protocol options (``Suite.options``).
      retry_failed: run cells recorded as failed again.

    Returns:
      the ``Table`` over the cells of these sets and seeds, of these detectors and of every
      other detector with cells recorded in ``out`` (a run of one more detector adds its row
      to the folder's table, it does not replace the others), and of every other seed whose
      cells these detectors all have in ``out`` (a run of one seed does not shrink a table of
      five).
    """
    suite = get_suite(name)
    options = suite_options(suite, options)
    detectors = list(detectors or suite.detectors)
    seeds = [int(s) for s in (suite.seeds if seeds is None else seeds)]
    chosen = select_sets(suite, options, sets, every)
    out = Path(out or Path("results") / "suites" / name)
    if "figures" in options and options["figures"] is None:  # the suite draws figures: in out
        options["figures"] = str(out / "figures")
    check_folder(out, name, options)
    store = CellStore(out)
    run_cells(
        name,
        suite.run_group,
        detectors=detectors,
        sets=chosen,
        seeds=seeds,
        options=options,
        store=store,
        progress=progress,
        retry_failed=retry_failed,
        seeds_together=suite.seeds_together,
    )
    # Other detectors recorded in the folder join the table where they cover every cell of
    # it: one run on a subset (``--every 6``) would otherwise shrink the sets that all the
    # means are taken over.
    have: dict[str, set] = {}
    for r in store.records():
        have.setdefault(r["detector"], set()).add((str(r["set"]), int(r["seed"])))
    # Nor does a run of fewer seeds shrink it (``--seeds 0`` in a folder of five): the other
    # seeds whose cells these detectors all have join the table.
    others = {seed for cells in have.values() for _, seed in cells} - set(seeds)
    seeds += sorted(
        seed for seed in others if all((str(s), seed) in have.get(d, ()) for d in detectors for s in chosen)
    )
    wanted = {(str(s), seed) for s in chosen for seed in seeds}
    recorded = sorted(d for d, cells in have.items() if d not in detectors and wanted <= cells)
    return write_table(name, out, detectors=detectors + recorded, sets=chosen, seeds=seeds, options=options)


# Options that say where the data is, not what is computed: a folder's cells hold for any.
_LOCATION_OPTIONS = ("data_dir", "figures", "models")


def check_folder(out: Path, name: str, options: dict) -> None:
    """Records the suite and its protocol options in ``<out>/suite.json``; a folder holding
    cells of another suite or other options is an error (its cells would mix into the table).

    Raises:
      ValueError: ``out`` belongs to another suite or other options.
    """
    path = Path(out) / "suite.json"
    protocol = {k: v for k, v in options.items() if k not in _LOCATION_OPTIONS}
    record = json.loads(json.dumps({"suite": name, "options": protocol}))  # tuples as lists
    if path.is_file():
        old = json.loads(path.read_text())
        if old != record:
            raise ValueError(
                f"{out} holds cells of suite '{old.get('suite')}' with options {old.get('options')}; "
                f"this run is '{name}' with {protocol}: use another --out"
            )
        return
    atomic_write(path, (json.dumps(record, indent=1) + "\n").encode())


def write_table(
    name: str,
    out: str | Path,
    *,
    detectors: Sequence[str],
    sets: Sequence[str],
    seeds: Sequence[int],
    options: dict,
) -> Table:
    """The table of the recorded cells in ``out`` (for these detectors, sets and seeds),
    written beside them."""
    suite = get_suite(name)
    out = Path(out)
    seeds = set(seeds)
    records = [r for r in CellStore(out).records() if r["seed"] in seeds]
    table = build_table(
        name,
        records,
        metric=suite.metric,
        scale=suite.scale,
        sets=list(sets),
        detectors=list(detectors),
        published=suite.published(options),
        extra_metrics=suite.extra_metrics,
    )
    write_outputs(table, out, header=table_header(suite, options, out), digits=suite.digits)
    return table


__all__ = ["SUITES", "CellStore", "Suite", "Table", "get_suite", "markdown", "run_suite", "write_table"]
