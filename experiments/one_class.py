"""The one-class benchmark: for each class c, train on class c's training images only, score
the whole test set (every other class is an anomaly), report AUROC per class and the mean,
beside published reference means.

    python experiments/one_class.py --dataset mnist --detector ae --arch conv
    python experiments/one_class.py --dataset fashion_mnist --detector vae --epochs 20
    python experiments/one_class.py --dataset digits --detector ae --quick     # smoke run, ~30 s
    python experiments/one_class.py --dataset mnist --model latent=16 --ensemble 0-4 --tag l16

Writes ``results/one_class/one_class_<dataset>_<detector>[_conv][_ensN][_<tag>].md`` and ``.json``
(``--out`` for another folder), and for the stacked path ``..._scores.npz``: each class's test
scores (``test_C``), held-out normal scores (``held_out_C``) and test labels (``labels_C``), and
the detector's other scores of one model as ``PART_test_C`` and ``PART_held_out_C``, which
``experiments/combine_scores.py`` combines across detectors; ``--model KEY=VALUE`` overrides a
model setting (e.g. ``latent=16``).
``--ensemble SEEDS`` averages the standardised scores of one model per seed. By default every
class (x every seed) of the table trains as one stacked program (``detectors.stack``: one
compile, the models vmapped in groups) and one call scores the test set with all of them;
``--separate`` (or ``--runs``) runs the classes one by one through ``jax_anomaly.run``, the
CLI's path; both give the same models. ``--quick`` trains 1 epoch on classes 0, 1.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

from jax_anomaly import DataConfig, RunConfig, TrainConfig, fitting, pages, plotting, run
from jax_anomaly.config import parse_int_list, parse_override, to_dict
from jax_anomaly.data.one_class import PUBLISHED_MEAN_AUROC
from jax_anomaly.detectors import detector_names, get_detector
from jax_anomaly.detectors.stack import fit_stack_detector
from jax_anomaly.environment import versions
from jax_anomaly.fitting import combine, standardisation
from jax_anomaly.metrics import ranking_metrics
from jax_anomaly.runner import prepare_data
from jax_anomaly.sharding import use_cpu_cores_as_devices
from jax_anomaly.suites import one_class as one_class_suite
from jax_anomaly.suites.cells import CellStore, cell_record
from jax_anomaly.suites.one_class import MODELS
from jax_anomaly.training import Progress


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="mnist", choices=sorted(PUBLISHED_MEAN_AUROC))
    p.add_argument("--detector", default="ae", choices=detector_names())
    p.add_argument("--arch", choices=["dense", "conv"], default="dense")
    p.add_argument("--epochs", type=int, help="default: the one_class suite's for the detector (20; geom 5)")
    p.add_argument("--batch-size", type=int, help="default: the one_class suite's (128; geom 64)")
    p.add_argument("--classes", default="0-9", help="e.g. 0-9 or 0,3,7")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir")
    p.add_argument("--out", default="results/one_class", help="folder of the Markdown and JSON tables")
    p.add_argument("--quick", action="store_true", help="1 epoch, classes 0 and 1: a smoke run")
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a model setting (a Python literal), e.g. --model latent=16; repeatable",
    )
    p.add_argument("--tag", default="", help="suffix of the output file names (for variants)")
    p.add_argument(
        "--runs",
        action="store_true",
        help="also write each class's run folder (plots, report.html) under <out>/<stem>_runs/, "
        "linked from the table page",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument(
        "--separate",
        action="store_true",
        help="train the classes one after another through jax_anomaly.run (the default trains "
        "every class and seed of the table as one stacked program)",
    )
    p.add_argument(
        "--ensemble",
        metavar="SEEDS",
        help="e.g. 0-4: one model per seed (same data split), each one's test scores "
        "standardised by its held-out normal scores, averaged",
    )
    p.add_argument(
        "--suite-cells",
        metavar="FOLDER",
        help="also record each class as a cell of the one_class suite in FOLDER (e.g. "
        "results/suites/one_class): the stacked models are the ones the suite trains class by class "
        "(same settings, split and keys); needs the suite's settings (no --model, --arch, --ensemble, "
        "--quick; default epochs and batch size)",
    )
    args = p.parse_args(argv)
    suite_train = one_class_suite.train_config(args.detector, one_class_suite.OPTIONS)
    if args.suite_cells and (
        args.model
        or args.arch != "dense"
        or args.ensemble
        or args.quick
        or args.epochs not in (None, suite_train.epochs)
        or args.batch_size not in (None, suite_train.batch_size)
    ):
        p.error(
            "--suite-cells records the suite's own settings: drop --model/--arch/--ensemble/--quick "
            "and --epochs/--batch-size other than the suite's"
        )
    args.epochs = args.epochs or suite_train.epochs
    args.batch_size = args.batch_size or suite_train.batch_size
    try:
        args.model = dict(parse_override(text) for text in args.model)
        args.ensemble = parse_int_list(args.ensemble, "--ensemble seeds") if args.ensemble else None
    except ValueError as e:
        p.error(str(e))
    if args.ensemble and (args.separate or args.runs):
        p.error(
            "--separate/--runs train one model per class: run them once per seed (--seed S), not --ensemble"
        )
    return args


def class_config(args, c: int, run_dir: Path | None = None) -> RunConfig:
    model = dict(MODELS.get(args.detector, {}))
    if args.arch == "conv":
        model = {k: v for k, v in model.items() if k != "hidden"} | {"arch": "conv"}
    return RunConfig(
        detector=args.detector,
        model=model | args.model,
        data=DataConfig(dataset=args.dataset, normal=(c,), data_dir=args.data_dir),
        train=TrainConfig(epochs=args.epochs, batch_size=args.batch_size),
        seed=args.seed,
        out=str(run_dir) if run_dir else None,
        plots=run_dir is not None,
        progress=False,
    )


def run_class(args, c: int, run_dir: Path | None = None) -> dict:
    """One class through ``jax_anomaly.run`` (the CLI's path), with its run folder."""
    s = run(class_config(args, c, run_dir))
    t = s["timings"]
    return {
        "class": c,
        "auroc": s["metrics"]["auroc"],
        "auprc": s["metrics"]["auprc"],
        "n_train": s["data"]["n_train"],
        "n_test": s["data"]["n_test"],
        "train_seconds": t["train_seconds"],
        "compile_seconds": t["compile_seconds"],
        "score_seconds": t["score_seconds"],
        "model": s["config"]["model"],
    }


def run_stacked(args, classes: list[int], seeds: list[int], progress: bool) -> tuple[list[dict], dict, dict]:
    """Every class (x every seed) of the table as one stack: one compiled program trains
    the K = classes x seeds models (each on its class's data, with its seed's key), one call
    scores the test set with all of them. Model (c, s) is the model ``jax_anomaly.run`` trains
    for class c with seed s (same split, key and data). With several seeds the class's score
    is the seeds' standardised mean (``fitting.combine``). Returns the rows, the timings and
    each class's scores (``class_scores``)."""
    datas = [prepare_data(class_config(args, c)) for c in classes]
    cfg = class_config(args, classes[0])
    detector = get_detector(cfg.detector)
    model_cfg = detector.config(cfg.preset, cfg.data.dataset, **cfg.model)
    members = [(i, s) for i in range(len(classes)) for s in seeds]
    t0 = time.perf_counter()
    stack = fit_stack_detector(
        detector,
        [model_cfg] * len(members),
        cfg.train,
        [detector.to_input(datas[i].x_train) for i, _ in members],
        [detector.to_input(datas[i].x_val) for i, _ in members],
        keys=[fitting.seed_keys(s)[0] for _, s in members],
        progress=progress,
    )
    wall_train = time.perf_counter() - t0
    # A standardised score's per-pixel scale: each model's from its own class's held-out rows.
    stack = fitting.with_pixel_scale(
        detector, stack, [datas[i].x_val for i, _ in members], key=fitting.seed_keys(args.seed)[2]
    )
    t0 = time.perf_counter()
    # Held-out normals of every class in one call; test sets shared by classes in one call each.
    val = np.concatenate([d.x_val for d in datas])
    val_parts = model_outputs(detector, stack, val, args.seed)
    val_scores = val_parts.pop("score")
    ends = np.cumsum([len(d.x_val) for d in datas])
    test_scores, test_parts = {}, {}
    for i, d in enumerate(datas):
        same = next((j for j in test_scores if np.array_equal(datas[j].x_test, d.x_test)), None)
        if same is None:
            test_parts[i] = model_outputs(detector, stack, d.x_test, args.seed)
            test_scores[i] = test_parts[i].pop("score")
        else:
            test_scores[i], test_parts[i] = test_scores[same], test_parts[same]
    score_seconds = time.perf_counter() - t0
    rows, scores = [], {}
    for i, (c, d) in enumerate(zip(classes, datas, strict=True)):
        ks = [k for k, (ci, _) in enumerate(members) if ci == i]
        test = test_scores[i][ks]
        held_out = val_scores[ks, ends[i] - len(d.x_val) : ends[i]]
        score = combine(test, standardisation(held_out)) if len(seeds) > 1 else test[0]
        held = combine(held_out, standardisation(held_out)) if len(seeds) > 1 else held_out[0]
        scores |= {f"test_{c}": score, f"held_out_{c}": held, f"labels_{c}": d.y_test}
        parts = {}
        if len(seeds) == 1:  # the detector's other per-sample scores, e.g. geom's dirichlet
            for part, values in test_parts[i].items():
                scores[f"{part}_test_{c}"] = values[ks[0]]
                scores[f"{part}_held_out_{c}"] = val_parts[part][ks[0], ends[i] - len(d.x_val) : ends[i]]
                parts[part] = ranking_metrics(d.y_test, values[ks[0]])["auroc"]
        rows.append(
            {
                "class": c,
                **ranking_metrics(d.y_test, score),
                "n_train": len(d.x_train),
                "n_test": len(d.x_test),
                "seed_aurocs": [ranking_metrics(d.y_test, t)["auroc"] for t in test],
                "diverged": [stack.result.diverged[k] for k in ks if k in stack.result.diverged],
                "model": to_dict(model_cfg),
                "part_aurocs": parts,
            }
        )
    timing = {
        "models": len(members),
        "train_seconds": stack.result.train_seconds,
        "compile_seconds": stack.result.compile_seconds,
        "wall_train_seconds": wall_train,
        "score_seconds": score_seconds,
        "group": stack.result.group,
    }
    return rows, timing, scores


def model_outputs(detector, stack, x: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Every per-sample output ``(K, N)`` of each model of ``stack`` for rows ``x``: ``score``
    and the detector's other scores (maps and vectors left out)."""
    out = fitting.raw_scores(detector, stack, detector.to_input(x), key=fitting.seed_keys(seed)[2])
    return {k: np.asarray(v) for k, v in out.items() if np.ndim(v) == 2}


def markdown(table: dict) -> str:
    rows = table["classes"]
    name = table["detector"] + (" (conv)" if table["arch"] == "conv" else "")
    name += "".join(f", {k}={v}" for k, v in table.get("overrides", {}).items())
    if table.get("ensemble"):
        name += f", ensemble of seeds {table['ensemble']}"
    lines = [
        f"# One-class {table['dataset']}: {name}, {table['epochs']} epochs, seed {table['seed']}",
        "",
        "| normal class | AUROC % | AUPRC % | train s | score s | compile s |",
        "|---|---|---|---|---|---|",
    ]

    def sec(r, k):  # per-class timings exist for --separate runs only
        return f"{r[k]:.1f}" if k in r else "-"

    for r in rows:
        lines.append(
            f"| {r['class']} | {100 * r['auroc']:.1f} | {100 * r['auprc']:.1f} | {sec(r, 'train_seconds')} "
            f"| {sec(r, 'score_seconds')} | {sec(r, 'compile_seconds')} |"
        )
    lines.append(
        f"| **mean** | **{table['mean_auroc']:.1f}** | | {table['total_train_seconds']:.0f} total | | |"
    )
    lines.append("")
    stack = table.get("stack")
    if stack:
        lines.append(
            f"- {stack['models']} models trained as one program (groups of {stack['group']}): train "
            f"{stack['train_seconds']:.1f} s, compile {stack['compile_seconds']:.1f} s, scoring "
            f"{stack['score_seconds']:.1f} s"
        )
    parts = [r.get("part_aurocs") or {} for r in rows]
    if all(parts) and parts:
        means = ", ".join(f"`{k}` {100 * np.mean([p[k] for p in parts]):.2f}" for k in parts[0])
        lines.append(f"- the same models' other scores, mean AUROC: {means}")
    if table.get("ensemble"):
        singles = ", ".join(f"{v:.1f}" for v in table["seed_mean_aurocs"])
        lines.append(f"- single models, mean AUROC per seed {table['ensemble']}: {singles}")
    for ref, value in PUBLISHED_MEAN_AUROC[table["dataset"]].items():
        lines.append(f"- {ref}: mean AUROC {value:.1f} (published)")
    if table["quick"]:
        lines.append("- **--quick smoke run: 1 epoch, two classes; not a result.**")
    return "\n".join(lines) + "\n"


def write_page(path: Path, table: dict, runs: Path | None) -> Path:
    """The table as an HTML page: per-class AUROC with the published references, a bar per
    class, and links to the per-class run reports (``--runs``)."""
    rows = [
        [r["class"], 100 * r["auroc"], 100 * r["auprc"], r.get("train_seconds"), r.get("score_seconds")]
        for r in table["classes"]
    ]
    rows.append(["mean", table["mean_auroc"], None, table["total_train_seconds"], None])
    chart = io.BytesIO()
    plotting.plot_bars(
        chart,
        [r["class"] for r in table["classes"]],
        [100 * r["auroc"] for r in table["classes"]],
        table["references"],
    )
    text = markdown(table)
    notes = [line[2:].replace("**", "") for line in text.splitlines() if line.startswith("- ")]
    links = None
    if runs is not None:
        links = {
            f"class {r['class']}": f"{runs.name}/class_{r['class']}/report.html" for r in table["classes"]
        }
    title = text.splitlines()[0].lstrip("# ")
    header = ["normal class", "AUROC %", "AUPRC %", "train s", "score s"]
    return pages.write_table_page(path, title, header, rows, chart=chart.getvalue(), notes=notes, links=links)


def main(argv=None) -> dict:
    args = parse_args(argv)
    use_cpu_cores_as_devices()  # as the CLI does: one CPU device per core for scoring
    if args.quick:
        args.epochs, args.classes = 1, "0,1"
    out = Path(args.out)
    stem = f"one_class_{args.dataset}_{args.detector}" + ("_conv" if args.arch == "conv" else "")
    stem += f"_ens{len(args.ensemble)}" if args.ensemble else ""
    stem += (f"_{args.tag}" if args.tag else "") + ("_quick" if args.quick else "")
    if args.runs and args.ensemble:
        raise ValueError("--runs writes one run folder per class: not with --ensemble")
    args.separate = args.separate or args.runs
    runs = out / f"{stem}_runs" if args.runs else None
    classes = parse_int_list(args.classes, "--classes")
    bar = Progress(
        len(classes), f"one-class {args.dataset} {args.detector}", unit="classes", enabled=not args.quiet
    )
    bar.update(0)
    seeds = args.ensemble or [args.seed]
    if args.separate:
        rows, timing = [], None
        for i, c in enumerate(classes):
            rows.append(run_class(args, c, runs / f"class_{c}" if runs else None))
            bar.update(i + 1, {"class": c, "auroc": rows[-1]["auroc"]})
    else:
        rows, timing, scores = run_stacked(args, classes, seeds, progress=not args.quiet)
        bar.update(len(classes))
        out.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out / f"{stem}_scores.npz", **scores)  # experiments/combine_scores.py
    table = {
        "dataset": args.dataset,
        "detector": args.detector,
        "arch": args.arch,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "quick": args.quick,
        "overrides": args.model,
        "ensemble": args.ensemble,
        "seed_mean_aurocs": [
            100 * float(np.mean([r["seed_aurocs"][i] for r in rows])) for i in range(len(args.ensemble))
        ]
        if args.ensemble
        else None,
        "classes": rows,
        "mean_auroc": 100 * sum(r["auroc"] for r in rows) / len(rows),
        "total_train_seconds": timing["train_seconds"] if timing else sum(r["train_seconds"] for r in rows),
        "stack": timing,
        "references": PUBLISHED_MEAN_AUROC[args.dataset],
        "versions": versions(),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(table, indent=2, default=str) + "\n")
    text = markdown(table)
    (out / f"{stem}.md").write_text(text)
    write_page(out / f"{stem}.html", table, runs)
    print(text)
    if args.suite_cells:
        record_cells(Path(args.suite_cells), table)
    return table


def record_cells(folder: Path, table: dict) -> None:
    """Each class of ``table`` as the ``one_class`` suite's cell ``(detector, 'dataset:c',
    seed)``; ``seconds`` is the stack's training and scoring time shared over the classes."""
    stack = table["stack"] or {}
    seconds = (stack.get("train_seconds", 0.0) + stack.get("score_seconds", 0.0)) / len(table["classes"])
    store = CellStore(folder)
    for row in table["classes"]:
        store.put(
            cell_record(
                "one_class",
                table["detector"],
                f"{table['dataset']}:{row['class']}",
                table["seed"],
                seconds=seconds,
                options=dict(one_class_suite.OPTIONS),
                versions=table["versions"],
                stacked=True,
                metrics={"auroc": row["auroc"], "auprc": row["auprc"]},
            )
        )
    print(f"recorded {len(table['classes'])} cells in {folder}/cells/{table['detector']}")


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as e:  # bad --model option, missing data
        sys.exit(f"one_class.py: error: {e}")
