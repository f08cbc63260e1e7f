"""The one-class benchmark: for each class c, train on class c's training images only, score
the whole test set (every other class is an anomaly), report AUROC per class and the mean,
beside published reference means.

    python experiments/one_class.py --dataset mnist --detector ae --arch conv
    python experiments/one_class.py --dataset fashion_mnist --detector vae --epochs 20
    python experiments/one_class.py --dataset digits --detector ae --quick     # smoke run, ~30 s
    python experiments/one_class.py --dataset mnist --model latent=16 --ensemble 0-4 --tag l16

Writes ``results/one_class_<dataset>_<detector>[_conv][_ensN][_<tag>].md`` and ``.json``
(``--out`` for another folder); ``--model KEY=VALUE`` overrides a model setting (e.g. ``latent=16``).
``--ensemble SEEDS`` averages the standardised scores of one model per seed. Run time: see
the tables' ``train s`` column; ``--quick`` trains 1 epoch on classes 0, 1.
Every run is seeded (``--seed``); the per-class runs go through ``jax_anomaly.run``, the same
path as the CLI (ensembles through the estimators it uses).
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

from jax_anomaly import DataConfig, RunConfig, TrainConfig, pages, plotting, run
from jax_anomaly.config import to_dict
from jax_anomaly.data.one_class import PUBLISHED_MEAN_AUROC
from jax_anomaly.detectors import detector_names
from jax_anomaly.environment import versions
from jax_anomaly.estimators import estimator_for
from jax_anomaly.metrics import ranking_metrics
from jax_anomaly.runner import prepare_data
from jax_anomaly.sharding import use_cpu_cores_as_devices
from jax_anomaly.training import Progress

# Model settings of the tables (``--arch conv`` swaps in the conv networks).
MODELS = {
    "ae": {"hidden": (256, 128), "latent": 32},
    "vae": {},
    "aae": {},
    "anogan": {"search_steps": 25, "search_lr": 5e-2, "search_schedule": "cosine", "search_init": 16},
    "fanogan": {},
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="mnist", choices=sorted(PUBLISHED_MEAN_AUROC))
    p.add_argument("--detector", default="ae", choices=detector_names())
    p.add_argument("--arch", choices=["dense", "conv"], default="dense")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--classes", default="0-9", help="e.g. 0-9 or 0,3,7")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir")
    p.add_argument("--out", default="results", help="folder of the Markdown and JSON tables")
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
        "--ensemble",
        metavar="SEEDS",
        help="e.g. 0-4: one model per seed (same data split), each one's test scores "
        "standardised by its held-out normal scores, averaged",
    )
    args = p.parse_args(argv)
    try:
        args.model = dict(parse_override(text) for text in args.model)
        args.ensemble = parse_classes(args.ensemble) if args.ensemble else None
    except ValueError as e:
        p.error(str(e))
    return args


def parse_override(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--model takes KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value  # a bare word such as gaussian


def parse_classes(text: str) -> list[int]:
    if "-" in text:
        lo, hi = (int(v) for v in text.split("-"))
        return list(range(lo, hi + 1))
    return [int(v) for v in text.split(",")]


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
    cfg = class_config(args, c, run_dir)
    if args.ensemble:
        return run_ensemble(cfg, args.ensemble)
    s = run(cfg)
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


def run_ensemble(cfg: RunConfig, seeds: list[int]) -> dict:
    """One model per seed on ``cfg``'s data split (made with ``cfg.seed``); the ensemble score
    is the mean over models of (test score - mean) / std of that model's validation scores,
    so that models whose scores live on different scales weigh the same."""
    data = prepare_data(cfg)
    total = np.zeros(len(data.x_test))
    row = {"seed_aurocs": [], "train_seconds": 0.0, "compile_seconds": 0.0, "score_seconds": 0.0}
    for seed in seeds:
        est = estimator_for(
            cfg.detector,
            model=cfg.model,
            epochs=cfg.train.epochs,
            batch_size=cfg.train.batch_size,
            dataset=cfg.data.dataset,
            validation_fraction=0.0,  # the one-class split already held out x_val
            seed=seed,
        )
        est.fit(data.x_train, validation_data=data.x_val)
        t0 = time.perf_counter()
        test = est.score_samples(data.x_test)
        row["score_seconds"] += time.perf_counter() - t0 + est.model_.calibration_seconds
        row["train_seconds"] += est.fitted_.result.train_seconds
        row["compile_seconds"] += est.fitted_.result.compile_seconds
        row["seed_aurocs"].append(ranking_metrics(data.y_test, test)["auroc"])
        val = est.validation_scores_
        total += (test - val.mean()) / max(float(val.std()), 1e-12)
    return {
        "class": cfg.data.normal[0],
        **ranking_metrics(data.y_test, total / len(seeds)),
        "n_train": len(data.x_train),
        "n_test": len(data.x_test),
        **row,
        "model": to_dict(est.model_config()),
    }


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
    for r in rows:
        lines.append(
            f"| {r['class']} | {100 * r['auroc']:.1f} | {100 * r['auprc']:.1f} | {r['train_seconds']:.1f} "
            f"| {r['score_seconds']:.1f} | {r['compile_seconds']:.1f} |"
        )
    lines.append(
        f"| **mean** | **{table['mean_auroc']:.1f}** | | {table['total_train_seconds']:.0f} total | | |"
    )
    lines.append("")
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
        [r["class"], 100 * r["auroc"], 100 * r["auprc"], r["train_seconds"], r["score_seconds"]]
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
    runs = out / f"{stem}_runs" if args.runs and not args.ensemble else None
    classes = parse_classes(args.classes)
    bar = Progress(
        len(classes), f"one-class {args.dataset} {args.detector}", unit="classes", enabled=not args.quiet
    )
    bar.update(0)
    rows = []
    for i, c in enumerate(classes):
        rows.append(run_class(args, c, runs / f"class_{c}" if runs else None))
        bar.update(i + 1, {"class": c, "auroc": rows[-1]["auroc"]})
    bar.close()
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
        "total_train_seconds": sum(r["train_seconds"] for r in rows),
        "references": PUBLISHED_MEAN_AUROC[args.dataset],
        "versions": versions(),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(table, indent=2, default=str) + "\n")
    text = markdown(table)
    (out / f"{stem}.md").write_text(text)
    write_page(out / f"{stem}.html", table, runs)
    print(text)
    return table


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as e:  # bad --model option, missing data
        sys.exit(f"one_class.py: error: {e}")
