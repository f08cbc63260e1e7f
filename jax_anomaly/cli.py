"""The ``jax-anomaly`` command: parse flags, build a ``RunConfig``, call the library.

Every ``run`` flag comes from a config dataclass field (``DataConfig``, ``TrainConfig``,
``RunConfig``, and each registered detector's config): its name (``--batch-size``), type,
default and help (the class's ``Attributes:`` docstring). A detector flag that the chosen
detector's config does not have is an error, never silently ignored.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import sys
import types
import typing

import jax

from jax_anomaly import pages, thresholds
from jax_anomaly.benchmarks.cli import add_bench_parser, run_bench
from jax_anomaly.config import DataConfig, TrainConfig, field_docs
from jax_anomaly.data import is_photographs
from jax_anomaly.data.series import is_series
from jax_anomaly.detectors import (
    DEFAULT_DETECTOR,
    DEFAULT_IMAGE_DETECTOR,
    detector_names,
    get_detector,
    load_plugin,
    registry,
)
from jax_anomaly.runner import RunConfig, print_summary, run
from jax_anomaly.sharding import use_cpu_cores_as_devices
from jax_anomaly.timeseries.baselines import BASELINES
from jax_anomaly.timeseries.detect import DEFAULT_SERIES_METHOD, SERIES_METHODS
from jax_anomaly.training import TrainingDivergedError

EXIT_USAGE = 2
MODEL_DEST = "model__"  # argparse dest prefix of detector config fields


def _number_tuple(kind: type, what: str):
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(t) for t in text.split(",") if t.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got '{text}'") from None

    return parse


_int_tuple = _number_tuple(int, "integers")
_float_tuple = _number_tuple(float, "numbers")


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")


def flag_name(field: dataclasses.Field) -> str:
    return field.metadata.get("flag", "--" + field.name.replace("_", "-"))


@functools.cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _help(text: str) -> str:
    """Docstring text as argparse help (no RST backticks; ``%`` escaped)."""
    return text.replace("``", "").replace("%", "%%")


def _kind(cls, field: dataclasses.Field):
    """The argparse form of a field's type: a converter, ``bool``, ``'append'``, or None
    (no flag: nested configs and dicts)."""
    if field.metadata.get("cli") is False:
        return None
    hint = _hints(cls)[field.name]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = str if str in args else args[0]
    if hint in (int, float, str, bool):
        return hint
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        return {int: _int_tuple, float: _float_tuple}.get(item, "append")
    return None


def add_config_flags(group, cls, *, defaults: dict | None = None, dest_prefix: str = "", only=None) -> list:
    """Adds one flag per field of the dataclass ``cls`` to ``group``. Returns the fields added.

    ``defaults`` overrides field defaults; with ``dest_prefix`` (detector options) every
    default is None, meaning "not given: the preset's value".
    """
    docs, added = field_docs(cls), []
    for f in dataclasses.fields(cls):
        kind = _kind(cls, f)
        if kind is None or (only is not None and f.name not in only):
            continue
        default = None if dest_prefix else (defaults or {}).get(f.name, f.default)
        kw = {"dest": dest_prefix + f.name, "help": _help(docs.get(f.name, ""))}
        if kind is not bool or dest_prefix:
            kw["metavar"] = f.name.upper()
        aliases = tuple(f.metadata.get("aliases", ()))
        if kind is bool and not dest_prefix:
            kw["action"] = "store_false" if default else "store_true"
            kw["default"] = default
        elif kind == "append":
            kw.update(action="append", default=list(default or ()))
        else:
            kw.update(type=_bool if kind is bool else kind, default=default)
            if "choices" in f.metadata:
                kw["choices"] = f.metadata["choices"]
            if default is not None:
                kw["help"] += " (default: %(default)s)"
        group.add_argument(flag_name(f), *aliases, **kw)
        added.append(f)
    return added


def detector_options() -> dict[str, list[str]]:
    """Each detector config field (by name) and the detectors whose config has it.

    Raises:
      RuntimeError: two detectors give a field of one name different types.
    """

    owners, kinds = {}, {}
    for name, det in sorted(registry().items()):
        for f in dataclasses.fields(det.config_cls):
            kind = _kind(det.config_cls, f)
            if kinds.setdefault(f.name, kind) is not kind:
                raise RuntimeError(
                    f"detector '{name}' gives option '{f.name}' another type than {owners[f.name]}"
                )
            owners.setdefault(f.name, []).append(name)
    return owners


def _series_only() -> tuple[str, ...]:
    """The time series methods and baselines that are not also registered detectors
    (``discords``, ``zscore``, ...)."""
    return tuple(b for b in (*SERIES_METHODS, *BASELINES) if b not in detector_names())


def _add_run_flags(p: argparse.ArgumentParser, *, defaults: dict) -> None:

    add_config_flags(p.add_argument_group("data"), DataConfig, defaults=defaults)
    g = p.add_argument_group("run")
    add_config_flags(g, RunConfig, defaults=defaults, only=("detector",))
    p._option_string_actions["--detector"].choices = [*detector_names(), *_series_only()]
    p._option_string_actions["--detector"].help += (
        f" (time series also: {', '.join((*SERIES_METHODS, *BASELINES))}; a series data set without"
        f" --detector runs {DEFAULT_SERIES_METHOD}; photographs (magnetic_tile, folder:PATH) run"
        f" {DEFAULT_IMAGE_DETECTOR})"
    )
    add_config_flags(g, RunConfig, defaults=defaults, only=("preset", "seed", "out", "precision", "ensemble"))
    g.add_argument(
        "--plugin", action="append", default=[], help="import MODULE (or FILE.py) that registers detectors"
    )
    add_config_flags(p.add_argument_group("training"), TrainConfig, defaults=defaults)
    g = p.add_argument_group("thresholds and output")
    add_config_flags(g, RunConfig, only=("threshold", "compare_thresholds", "plots", "progress"))
    p._option_string_actions["--threshold"].help = f"{thresholds.SPEC_HELP} (default: %(default)s)"
    g = p.add_argument_group("detector options (each applies to the detectors in brackets)")
    seen = set()
    for _, det in sorted(registry().items()):
        fields = [f.name for f in dataclasses.fields(det.config_cls) if f.name not in seen]
        for f in add_config_flags(g, det.config_cls, dest_prefix=MODEL_DEST, only=fields):
            seen.add(f.name)
    texts = {name: field_docs(det.config_cls) for name, det in registry().items()}
    for option, owners in detector_options().items():
        action = next(a for a in p._actions if a.dest == MODEL_DEST + option)
        by_text: dict[str, list[str]] = {}
        for owner in owners:  # detectors sharing an option may document it differently
            by_text.setdefault(texts[owner].get(option, ""), []).append(owner)
        action.help = _help(" ".join(f"[{', '.join(names)}] {text}" for text, names in by_text.items()))
    g = p.add_argument_group("multi-host")
    g.add_argument(
        "--distributed",
        action="store_true",
        help="call jax.distributed.initialize() first; on SLURM or Cloud TPU it finds its peers, "
        "elsewhere give the three flags below (see README)",
    )
    g.add_argument("--coordinator", help="with --distributed: HOST:PORT of process 0")
    g.add_argument("--num-processes", type=int, help="with --distributed: number of processes")
    g.add_argument("--process-id", type=int, help="with --distributed: this process's index")


def build_parser() -> argparse.ArgumentParser:

    parser = argparse.ArgumentParser(
        prog="jax-anomaly", description="Anomaly detection with autoencoders and GANs in JAX/Flax."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="dense autoencoder on the bundled 8x8 digits, digit 0 normal (no download)"
    )
    _add_run_flags(demo, defaults={"detector": "ae", "epochs": 100, "batch_size": 32})
    run = sub.add_parser("run", help="train a detector, score the test split, write a run folder")
    _add_run_flags(run, defaults={"detector": None})
    report = sub.add_parser(
        "report", help="rebuild a run folder's report.html; several run folders: one comparison page"
    )
    report.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders (written by run or demo)")
    report.add_argument(
        "--out", default="comparison.html", help="comparison page of several runs (default: %(default)s)"
    )
    launch = sub.add_parser(
        "launch",
        help="run a command in N local processes joined by jax.distributed (multi-host, on one machine)",
        description="Starts N processes of a run/demo command on this machine, each with the "
        "coordinator flags (--distributed --coordinator localhost:PORT --num-processes N --process-id i), "
        "forwards their output prefixed [i], and stops them all when one fails. "
        "Example: jax-anomaly launch --processes 2 -- run --detector ae --dataset digits --out runs/two",
    )
    launch.add_argument("--processes", type=int, default=2, help="number of processes (default: %(default)s)")
    launch.add_argument("--port", type=int, help="coordinator port on localhost (default: a free one)")
    launch.add_argument("command_args", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
    add_bench_parser(sub)
    _add_suite_parser(sub)
    return parser


def _add_suite_parser(sub) -> None:
    from jax_anomaly.suites import SUITES

    p = sub.add_parser(
        "suite",
        help="run a benchmark suite (adbench, ucr, magnetic_tile, one_class), published results beside",
        description="Runs every (detector, set, seed) cell not yet recorded in the output folder and "
        "writes table.md, table.json, ranks.png and index.html there. Rerun the same command to "
        "continue an interrupted suite.",
    )
    p.add_argument("name", choices=list(SUITES), help="the suite")
    p.add_argument("--detectors", help="comma-separated detectors (default: the suite's)")
    p.add_argument("--seeds", help="comma-separated seeds or a range 0-4 (default: the suite's)")
    p.add_argument("--sets", help="comma-separated set names (default: all the suite's sets)")
    p.add_argument("--every", type=int, default=1, help="every K-th set only, for a quick subset")
    p.add_argument("--out", help="the suite's folder (default: results/suites/NAME)")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a protocol option, e.g. protocol=unsup or max_rows=50000 (adbench), size=128 (magnetic_tile)",
    )
    p.add_argument("--data-dir", help="data root searched first")
    p.add_argument("--retry-failed", action="store_true", help="run cells recorded as failed again")
    p.add_argument("--quiet", action="store_true", help="no progress line")


def _split_list(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def run_suite_command(args) -> None:
    from jax_anomaly.config import parse_int_list, parse_override
    from jax_anomaly.suites import run_suite

    options = dict(parse_override(o) for o in args.option)
    if args.data_dir:
        options["data_dir"] = args.data_dir
    seeds = parse_int_list(args.seeds, "seeds") if args.seeds else None
    table = run_suite(
        args.name,
        detectors=_split_list(args.detectors),
        seeds=seeds,
        sets=_split_list(args.sets),
        every=args.every,
        out=args.out,
        options=options,
        progress=not args.quiet,
        retry_failed=args.retry_failed,
    )
    means, ranks = table.means(), table.ranks()
    for det in table.ours:
        extra = f"  average rank {ranks[det]:.2f} of {len(ranks)}" if det in ranks else ""
        mean = means.get(det)
        text = f"{mean:.{3 if table.scale == 1 else 1}f}" if mean is not None else "n/a"
        print(f"{det}: mean {table.metric} {text} over {len(table.ours[det])} sets{extra}")
    if table.failed:
        print(f"{len(table.failed)} cell(s) failed; see table.md")


def _values(cls, args, names=None) -> dict:
    """The parsed values of ``cls``'s flags (those that have one)."""
    return {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(cls)
        if _kind(cls, f) is not None and (names is None or f.name in names) and hasattr(args, f.name)
    }


def config_from_args(args: argparse.Namespace):
    """A ``RunConfig`` from parsed flags (validates everything, raising ``ValueError``)."""

    if args.detector is None:
        if is_series(args.dataset):
            args.detector = DEFAULT_SERIES_METHOD
        else:
            args.detector = DEFAULT_IMAGE_DETECTOR if is_photographs(args.dataset) else DEFAULT_DETECTOR
    if args.detector in _series_only() and not is_series(args.dataset):
        raise ValueError(
            f"--detector {args.detector} is a time series baseline; use it with a series data set"
        )
    series_baseline = args.detector in (*SERIES_METHODS, *BASELINES) and is_series(args.dataset)
    detector = None if series_baseline else get_detector(args.detector)
    fields = {f.name for f in dataclasses.fields(detector.config_cls)} if detector else set()
    model = {}
    for dest, value in vars(args).items():
        if not dest.startswith(MODEL_DEST) or value is None:
            continue
        name = dest[len(MODEL_DEST) :]
        if name not in fields:
            owners = detector_options()[name]
            raise ValueError(
                f"--{name.replace('_', '-')} does not apply to detector '{args.detector}' "
                f"(it applies to: {', '.join(owners)})"
            )
        model[name] = value
    if args.resume and not args.out:
        raise ValueError("--resume needs --out: the run folder of the run to continue")
    out = args.out or (
        f"runs/{args.detector}-{args.dataset.replace(':', '_').replace('/', '_')}-"
        + datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    )
    run_values = _values(
        RunConfig,
        args,
        names=(
            "detector",
            "preset",
            "threshold",
            "compare_thresholds",
            "seed",
            "plots",
            "progress",
            "precision",
            "ensemble",
        ),
    )
    return RunConfig(
        **run_values,
        model=model,
        data=DataConfig(**_values(DataConfig, args)),
        train=TrainConfig(**_values(TrainConfig, args)),
        out=out,
    )


def _plugins_in(argv: list[str]) -> list[str]:
    """The ``--plugin`` values of ``argv`` (loaded before the parser is built: the detectors
    they register become choices and flags)."""
    found = []
    for i, arg in enumerate(argv):
        if arg == "--plugin" and i + 1 < len(argv):
            found.append(argv[i + 1])
        elif arg.startswith("--plugin="):
            found.append(arg.split("=", 1)[1])
    return found


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 2 bad input or data, 1 training diverged)."""

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        for module in _plugins_in(argv):
            load_plugin(module)
    except ValueError as e:
        print(f"jax-anomaly: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    args = build_parser().parse_args(argv)
    if not getattr(args, "distributed", False) and getattr(args, "which", None) != "scaling":
        use_cpu_cores_as_devices()  # one CPU device per core for scoring (GPUs unaffected)
    try:
        if args.command == "launch":
            from jax_anomaly.launch import launch

            return launch(args.processes, args.command_args, port=args.port)
        if args.command == "bench":
            run_bench(args)
            return 0
        if args.command == "suite":
            run_suite_command(args)
            return 0
        if args.command == "report":
            if len(args.runs) == 1:
                print(pages.write_run_report(args.runs[0]))
            else:
                print(pages.write_comparison(args.runs, args.out))
            return 0
        cfg = config_from_args(args)
        if args.distributed:
            jax.distributed.initialize(
                coordinator_address=args.coordinator,
                num_processes=args.num_processes,
                process_id=args.process_id,
            )
        summary = run(cfg)
    except (ValueError, FileNotFoundError) as e:
        print(f"jax-anomaly: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingDivergedError as e:
        print(f"jax-anomaly: error: {e}", file=sys.stderr)
        return 1
    print_summary(summary, cfg.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
