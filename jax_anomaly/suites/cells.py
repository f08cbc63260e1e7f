"""A suite's cells, one (detector, set, seed) each: run, recorded atomically one file a cell,
skipped when already recorded (an interrupted suite continues where it stopped), a failing
cell recorded with its error while the suite goes on."""

from __future__ import annotations

import dataclasses
import json
import re
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from jax_anomaly.environment import versions
from jax_anomaly.persistence import atomic_write
from jax_anomaly.training import Progress


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text))


@dataclasses.dataclass(frozen=True)
class CellStore:
    """The folder of a suite's cells: ``<out>/cells/<detector>/<set>__seed<k>.json``."""

    out: Path

    def path(self, detector: str, name: str, seed: int) -> Path:
        return Path(self.out) / "cells" / _slug(detector) / f"{_slug(name)}__seed{seed}.json"

    def get(self, detector: str, name: str, seed: int) -> dict | None:
        path = self.path(detector, name, seed)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:  # written atomically, so only a hand-edited file gets here
            return None

    def put(self, record: dict) -> None:
        path = self.path(record["detector"], record["set"], record["seed"])
        atomic_write(path, (json.dumps(record, indent=1, default=float) + "\n").encode())

    def records(self) -> list[dict]:
        folder = Path(self.out) / "cells"
        if not folder.is_dir():
            return []
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*/*.json"))]


def cell_record(suite: str, detector: str, name: str, seed: int, **fields) -> dict:
    """One cell's record as ``CellStore.put`` takes it: who, where, the installed versions,
    and ``fields`` (``seconds``, ``options``, ``metrics`` or ``error``, ...; a ``versions``
    field replaces the installed ones)."""
    return {"suite": suite, "detector": detector, "set": name, "seed": seed, "versions": versions(), **fields}


# ``(detector, set, seeds, options) -> {seed: metrics}``: one group of cells that share the
# data and the detector (seeds of a deep detector on the model axis).
RunGroup = Callable[[str, str, list[int], dict], dict[int, dict]]


def run_cells(
    suite: str,
    run_group: RunGroup,
    *,
    detectors: Sequence[str],
    sets: Sequence[str],
    seeds: Sequence[int],
    options: dict,
    store: CellStore,
    progress: bool = True,
    retry_failed: bool = False,
    seeds_together: bool = True,
) -> dict:
    """Runs every (detector, set, seed) cell not yet recorded in ``store``.

    A group is a (detector, set)'s missing seeds (``seeds_together``) or one of them. A
    group's cells are written as soon as the group finishes (each cell gets the group's
    wall time divided by its cells); an exception fails every cell of its group, recorded
    with its message and traceback, and the suite goes on. ``retry_failed`` runs recorded
    failures again.

    Returns:
      ``{'ran': cells run now, 'skipped': already recorded, 'failed': failed now}``.
    """
    todo = []
    for detector in detectors:
        for name in sets:
            missing = []
            for seed in seeds:
                old = store.get(detector, name, seed)
                if old is None or (retry_failed and old.get("error")):
                    missing.append(seed)
            if missing:
                todo += (
                    [(detector, name, missing)]
                    if seeds_together
                    else [(detector, name, [s]) for s in missing]
                )
    total = sum(len(m) for *_, m in todo)
    skipped = len(detectors) * len(sets) * len(seeds) - total
    bar = Progress(total, f"suite {suite}", unit="cells", enabled=progress)
    bar.update(0)
    done = failed = 0
    for detector, name, missing in todo:
        t0 = time.perf_counter()
        try:
            results, error = run_group(detector, name, list(missing), dict(options)), None
        except Exception as e:  # noqa: BLE001  (a failing cell is recorded, the suite goes on)
            results, error = {}, f"{type(e).__name__}: {e}"
            trace = traceback.format_exc(limit=8)
        seconds = (time.perf_counter() - t0) / len(missing)
        for seed in missing:
            record = cell_record(suite, detector, name, seed, seconds=seconds, options=options)
            if error is None and seed in results:
                record["metrics"] = results[seed]
            else:
                record["error"] = error or f"no result for seed {seed}"
                if error is not None:
                    record["traceback"] = trace
                failed += 1
            store.put(record)
        done += len(missing)
        bar.update(done, {"failed": failed} if failed else None)
    bar.close()
    return {"ran": total, "skipped": skipped, "failed": failed}
