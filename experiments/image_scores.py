"""Image scores beyond pixel MSE on the one-class tables: one autoencoder per normal class,
trained once, scored with every score of ``jax_anomaly.image_scores``.

    python experiments/image_scores.py --dataset mnist           # ~2 min on 2 CPU cores
    python experiments/image_scores.py --dataset fashion_mnist
    python experiments/image_scores.py --dataset digits --quick  # smoke run, ~20 s
    python experiments/image_scores.py --dataset fashion_mnist --model latent=16 --tag l16

Protocol (docs/results.md): the default score is picked on MNIST only (mean AUROC over the
ten classes, seed 0, 20 epochs) and reported on Fashion-MNIST untouched; every variant is
reported on both; thresholds stay on held-out normal data (the table's last row: the share of
test normals each score's default threshold flags, 5 % by design). Each score is also reported
standardised per pixel by the held-out normals (``<score>_std``, ``image_scores.pixel_scale``
fitted on the held-out maps). The model is the one-class tables' dense AE (784-256-128-32).
``--model KEY=VALUE`` changes a model setting (a variant of the table; ``--tag`` names it).
Writes ``results/image_scores/image_scores_<dataset>[_<tag>].md`` and ``.json``
(``--out`` for another folder).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from jax_anomaly import DataConfig, RunConfig, TrainConfig, fitting, thresholds
from jax_anomaly.config import parse_override
from jax_anomaly.data.one_class import PUBLISHED_MEAN_AUROC
from jax_anomaly.detectors import check_features, check_fit_data, get_detector
from jax_anomaly.environment import versions
from jax_anomaly.image_scores import RECONSTRUCTION_SCORES
from jax_anomaly.metrics import ranking_metrics
from jax_anomaly.runner import prepare_data
from jax_anomaly.sharding import use_cpu_cores_as_devices
from jax_anomaly.training import Progress

MODEL = {"hidden": (256, 128), "latent": 32}


def class_scores(dataset: str, c: int, epochs: int, seed: int, data_dir=None, settings=MODEL) -> dict:
    """Trains the AE with model ``settings`` on class ``c`` and returns AUROC per score and
    the training time."""
    det = get_detector("ae")
    cfg = det.config(None, dataset, **settings)
    data = prepare_data(RunConfig(data=DataConfig(dataset, (c,), data_dir=data_dir), seed=seed))
    x_train, x_val = check_fit_data(data.x_train, data.x_val)
    spec = thresholds.parse_threshold(thresholds.DEFAULT_THRESHOLD)
    model = fitting.fit_calibrated(det, cfg, TrainConfig(epochs=epochs), x_train, x_val, spec=spec, seed=seed)
    x_test = check_features(data.x_test, data.n_features)
    row = {"class": c, "train_seconds": model.fitted.result.train_seconds, "auroc": {}, "fpr": {}}
    normal = np.asarray(data.y_test) == 0
    for score in RECONSTRUCTION_SCORES:  # the same network, scored every way
        fitted = dataclasses.replace(model.fitted, config=dataclasses.replace(cfg, score=score))
        fitted = fitting.with_pixel_scale(det, fitted, x_val, key=fitting.seed_keys(seed)[2])
        test = fitting.score_details(det, fitted, x_test, seed=seed)["score"]
        row["auroc"][score] = 100 * ranking_metrics(data.y_test, test)["auroc"]
        # the default threshold from the same held-out rows (a _std score's scale too)
        val = fitting.score_details(det, fitted, x_val, seed=seed)["score"]
        threshold = thresholds.select_threshold(spec, val_scores=val)
        row["fpr"][score] = 100 * float(np.mean(test[normal] > threshold))
    return row


def describe(settings: dict) -> str:
    """``'D-256-128-32'`` (the dense shape) and any other setting, ``', loss=bce'``."""
    shape = "-".join(str(v) for v in ("D", *settings["hidden"], settings["latent"]))
    return shape + "".join(f", {k}={v}" for k, v in settings.items() if k not in MODEL)


def markdown(table: dict) -> str:
    scores = [s for s in RECONSTRUCTION_SCORES if s in table["mean"]]
    lines = [
        f"# Image scores, one-class {table['dataset']}: dense AE {describe(table['model'])}, "
        f"{table['epochs']} epochs, seed {table['seed']}",
        "",
        "| normal class | " + " | ".join(scores) + " |",
        "|---|" + "---|" * len(scores),
    ]
    for r in table["classes"]:
        lines.append(f"| {r['class']} | " + " | ".join(f"{r['auroc'][s]:.1f}" for s in scores) + " |")
    lines.append("| **mean** | " + " | ".join(f"**{table['mean'][s]:.1f}**" for s in scores) + " |")
    fpr = " | ".join(f"{table['fpr'][s]:.1f}" for s in scores)
    lines.append(f"| test normals flagged, % (mean; {thresholds.DEFAULT_THRESHOLD} of held-out) | {fpr} |")
    lines.append("")
    lines += [f"- {name}: mean AUROC {value:.1f} (published)" for name, value in table["references"].items()]
    if table["quick"]:
        lines.append("- --quick smoke run: not a result.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="mnist", choices=sorted(PUBLISHED_MEAN_AUROC))
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir")
    p.add_argument("--out", default="results/image_scores")
    p.add_argument("--quick", action="store_true", help="1 epoch, classes 0 and 1")
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a model setting (a Python literal), e.g. --model latent=16; repeatable",
    )
    p.add_argument("--tag", default="", help="suffix of the output file names (for variants)")
    args = p.parse_args(argv)
    try:
        model = MODEL | dict(parse_override(text) for text in args.model)
    except ValueError as e:
        p.error(str(e))
    use_cpu_cores_as_devices()
    classes = [0, 1] if args.quick else list(range(10))
    epochs = 1 if args.quick else args.epochs
    bar = Progress(len(classes), f"image scores {args.dataset}", unit="classes")
    rows, t0 = [], time.perf_counter()
    for i, c in enumerate(classes):
        rows.append(class_scores(args.dataset, c, epochs, args.seed, args.data_dir, model))
        bar.update(
            i + 1, {"class": c, "loss": rows[-1]["auroc"]["loss"], "mean3": rows[-1]["auroc"]["mean3"]}
        )
    bar.close()
    table = {
        "dataset": args.dataset,
        "epochs": epochs,
        "seed": args.seed,
        "quick": args.quick,
        "model": model,
        "classes": rows,
        "mean": {s: float(np.mean([r["auroc"][s] for r in rows])) for s in RECONSTRUCTION_SCORES},
        "fpr": {s: float(np.mean([r["fpr"][s] for r in rows])) for s in RECONSTRUCTION_SCORES},
        "references": PUBLISHED_MEAN_AUROC[args.dataset],
        "seconds": time.perf_counter() - t0,
        "versions": versions(),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = (
        f"image_scores_{args.dataset}"
        + (f"_{args.tag}" if args.tag else "")
        + ("_quick" if args.quick else "")
    )
    (out / f"{stem}.json").write_text(json.dumps(table, indent=2, default=str) + "\n")
    (out / f"{stem}.md").write_text(markdown(table))
    print(markdown(table))
    return table


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"image_scores.py: error: {e}")
