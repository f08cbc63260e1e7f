"""One run end to end: data -> one-class split -> fit -> score -> threshold -> metrics ->
run folder. The CLI, the experiments and the tests all go through ``run``."""

from __future__ import annotations

import argparse
import atexit
import csv
import dataclasses
import datetime
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jax_anomaly import fitting, pages, thresholds
from jax_anomaly import metrics as metrics_lib
from jax_anomaly.config import DataConfig, TrainConfig, matmul_precision, to_dict
from jax_anomaly.data import OneClassData, is_photographs, load_dataset, one_class_split
from jax_anomaly.data.series import is_series
from jax_anomaly.detectors import DEFAULT_DETECTOR, check_features, check_fit_data, get_detector
from jax_anomaly.detectors.stack import FittedStack
from jax_anomaly.environment import versions
from jax_anomaly.metrics import defect_metrics
from jax_anomaly.persistence import is_writer, write_json
from jax_anomaly.sharding import LOCAL, gather_shares, use_cpu_cores_as_devices

CHECKPOINT_FILE = "checkpoint.msgpack"
DATA_FOLDER = "data"  # a streamed run's data on disk (``data_store``)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything one run needs; every random choice derives from ``seed``.

    Attributes:
      detector: registered detector name (default: the tabular ensemble, ``tabular``).
      preset: detector preset (None: the one for the data set).
      model: overrides of the detector config's fields (e.g. ``{'latent': 8}``).
      data: data settings (``DataConfig``).
      train: optimisation settings (``TrainConfig``).
      threshold: the threshold rule used for predictions.
      compare_thresholds: more threshold rules reported beside it (best_f1, an oracle, is
        always added).
      seed: seed of every random choice.
      out: run folder (None writes nothing).
      plots: write the PNG plots.
      progress: show progress lines.
      precision: matmul precision of training and scoring (None: the backend's default, TF32
        on recent NVIDIA GPUs).
      ensemble: train this many models (seeds seed, seed+1, ...) as one program and score
        with their standardised mean (``fitting.combine``).
    """

    detector: str = DEFAULT_DETECTOR
    preset: str | None = None
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    threshold: thresholds.ThresholdSpec | str = thresholds.DEFAULT_THRESHOLD
    compare_thresholds: tuple[thresholds.ThresholdSpec | str, ...] = dataclasses.field(
        default=(), metadata={"flag": "--compare-threshold"}
    )
    seed: int = 0
    out: str | None = None
    plots: bool = dataclasses.field(default=True, metadata={"flag": "--no-plots"})
    progress: bool = dataclasses.field(default=True, metadata={"flag": "--quiet"})
    precision: str | None = dataclasses.field(default=None, metadata={"choices": ("bf16", "float32", "tf32")})
    ensemble: int = 1

    def __post_init__(self):
        matmul_precision(self.precision)  # validates the name
        if not isinstance(self.ensemble, int) or self.ensemble < 1:
            raise ValueError(f"ensemble must be an integer >= 1, got {self.ensemble!r}")
        object.__setattr__(self, "threshold", thresholds.parse_threshold(self.threshold))
        object.__setattr__(
            self, "compare_thresholds", tuple(thresholds.parse_threshold(s) for s in self.compare_thresholds)
        )
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")


def prepare_data(cfg: RunConfig, share: tuple[int, int] | None = None) -> OneClassData:
    """Loads the data set and applies the one-class protocol (seeded by ``cfg.seed``).
    ``share``: ``(process index, process count)``: keep only that process's share of the
    training and test rows; IDX images are read for those rows only. With
    ``cfg.train.stream_rows`` nothing is held whole in memory: photographs are decoded into
    ``data_store(cfg)/images`` (reused by a later run with the same ``--out``), IDX images read
    on demand, and the split's rows written there as memory maps, which training streams."""
    d = cfg.data
    image_size = d.image_size
    if image_size is None and is_photographs(d.dataset):
        image_size = getattr(
            get_detector(cfg.detector).config(cfg.preset, d.dataset, **cfg.model), "resize_to", None
        )
    store = None
    if cfg.train.stream_rows is not None:
        if share is not None:
            raise ValueError(
                "stream_rows trains in one process: leave it unset for a run over several processes"
            )
        store = data_store(cfg)
    ds = load_dataset(
        d.dataset,
        data_dir=d.data_dir,
        source=d.source,
        seed=cfg.seed,
        test_fraction=d.test_fraction,
        label_column=d.label_column,
        synthetic=d.synthetic,
        lazy=share is not None or store is not None,
        image_size=image_size,
        rgb=d.rgb,
        store=None if store is None else store / "images",
        progress=cfg.progress,
    )
    return one_class_split(ds, d.normal, val_fraction=d.val_fraction, seed=cfg.seed, share=share, store=store)


def data_store(cfg: RunConfig) -> Path:
    """Where a streamed run keeps its data on disk: the run folder's ``data/``, or without
    ``--out`` a temporary folder removed when the process ends."""
    if cfg.out:
        return Path(cfg.out) / DATA_FOLDER
    folder = Path(tempfile.mkdtemp(prefix="jax-anomaly-data-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def data_share(cfg: RunConfig, detector) -> tuple[int, int] | None:
    """``(process index, count)`` when each process of a multi-process run reads only its
    share of the rows: data-parallel training of one model whose state does not derive from
    statistics of the whole training set. None (every process reads all rows) with one
    process, for an ensemble (its models, split over the processes, each need all rows)
    and for such detectors (the AAE's input standardisation)."""
    if jax.process_count() == 1 or cfg.ensemble > 1 or detector.needs_every_row:
        return None
    return jax.process_index(), jax.process_count()


def run(cfg: RunConfig, data: OneClassData | None = None) -> dict:
    """Runs one experiment and returns its summary (the content of ``metrics.json``).

    Args:
      cfg: the run's configuration.
      data: already prepared data (skips loading; used by benchmarks and tests): a
        ``OneClassData``, or a ``data.series.Series`` for a time series data set (which runs
        ``timeseries.run.run_series``).

    Example::

        from jax_anomaly import DataConfig, RunConfig, TrainConfig, run
        summary = run(RunConfig(data=DataConfig("synthetic"), train=TrainConfig(epochs=50, batch_size=32),
                                threshold="mean_std:3", out="runs/synthetic"))
        print(summary["metrics"]["auroc"])
    """

    if is_series(cfg.data.dataset):
        from jax_anomaly.timeseries.run import run_series

        return run_series(cfg, data)
    detector = get_detector(cfg.detector)
    model_cfg = detector.config(cfg.preset, cfg.data.dataset, **cfg.model)
    out = Path(cfg.out) if cfg.out else None
    base = {
        "detector": cfg.detector,
        "dataset": cfg.data.dataset,
        "normal": list(cfg.data.normal),
        "seed": cfg.seed,
        "config": {"run": to_dict(cfg), "model": to_dict(model_cfg)},
        "versions": versions(),
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    # Several processes (jax.distributed): each runs the whole run; process 0 alone writes the
    # run folder and checkpoints, which every process reads on --resume.
    writer = is_writer()
    if out and writer:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", base)  # written first: a crashed run still says what it was

    t0 = time.perf_counter()
    if data is None:
        data = prepare_data(cfg, data_share(cfg, detector))
    data_seconds = time.perf_counter() - t0

    if cfg.train.resume and not out:
        raise ValueError("--resume needs the run folder (--out) of the run to continue")
    spec = cfg.threshold
    # The run folder holds the checkpoint; with --resume or --checkpoint-every only.
    keep = out and (cfg.train.checkpoint_every or cfg.train.resume)
    train = dataclasses.replace(cfg.train, checkpoint=str(out / CHECKPOINT_FILE) if keep else None)
    x_train, x_val = check_fit_data(data.x_train, data.x_val)
    # Rules on test scores are applied below; the model is calibrated with the default beside them.
    model = fitting.fit_calibrated(
        detector,
        model_cfg,
        train,
        x_train,
        x_val,
        spec=spec if spec.fittable else thresholds.parse_threshold(thresholds.DEFAULT_THRESHOLD),
        seed=cfg.seed,
        precision=cfg.precision,
        devices=train.devices,
        progress=cfg.progress,
        n_models=cfg.ensemble,
        total_rows=None if data.share is None else data.n_train,
    )
    fitted = model.fitted

    t0 = time.perf_counter()
    x_test = check_features(data.x_test, fitted.n_features, what="test data")
    test_out = fitting.score_details(
        detector,
        fitted,
        x_test,
        seed=cfg.seed,
        precision=cfg.precision,
        devices=train.devices if data.share is None else LOCAL,  # a share: on this process's devices
        progress=cfg.progress,
        standardise=model.standardise,
    )
    if data.share is not None:
        test_out = gather_shares(test_out)  # every process's scores, in test order
    score_seconds = time.perf_counter() - t0 + model.calibration_seconds
    val_scores = model.calibration_scores if x_val is not None else None
    test_scores = test_out["score"]

    def threshold_of(spec):
        return thresholds.select_threshold(
            spec, val_scores=val_scores, test_scores=test_scores, test_labels=data.y_test
        )

    threshold = model.threshold if spec.fittable else threshold_of(spec)
    result = metrics_lib.evaluate(data.y_test, test_scores, threshold, classes=data.test_classes)
    compare = {}
    specs = list(cfg.compare_thresholds)
    if data.y_test.any() and not any(s.oracle for s in specs):
        specs.append(thresholds.parse_threshold("best_f1"))
    for other in specs:
        m = metrics_lib.evaluate(data.y_test, test_scores, threshold_of(other))
        label = f"{other} (oracle: uses test labels)" if other.oracle else str(other)
        compare[label] = {k: m[k] for k in ("threshold", "precision", "recall", "f1", "confusion_matrix")}

    history = fitted.result.history
    defects = defect_summary(data, test_out) if data.test_kinds is not None else None
    summary = {
        **base,
        "threshold": {
            "spec": str(spec),
            "value": threshold,
            "from": f"{model.calibration} scores of normal samples" if spec.fittable else "test scores",
        },
        "metrics": result,
        **({"defects": defects} if defects else {}),
        "compare_thresholds": compare,
        "data": {
            "n_train": data.n_train,
            # a multi-process run: the rows this (the writing) process read and held
            "share": None
            if data.share is None
            else {
                "process": data.share[0],
                "of": data.share[1],
                "train_rows": len(data.x_train),
                "test_rows": len(data.x_test),
            },
            "n_val": len(data.x_val),
            "n_test": len(data.y_test),
            "n_test_anomalies": int(data.y_test.sum()),
            "n_features": data.n_features,
        },
        "training": {
            "epochs_run": len(history),
            "best_epoch": fitted.result.best_epoch,
            "stopped_early": fitted.result.stopped_early,
            "final": history[-1] if history else None,
        },
        "timings": {
            "data_seconds": data_seconds,
            "compile_seconds": fitted.result.compile_seconds,
            "train_seconds": fitted.result.train_seconds,
            "train_samples_per_second": len(history)
            * data.n_train
            * cfg.ensemble
            / max(fitted.result.train_seconds, 1e-9),
            "score_seconds": score_seconds,
        },
    }
    if out and writer:
        _write_run_folder(out, cfg, data, model, train, test_out, summary)
    return summary


def defect_summary(data: OneClassData, test_out: dict) -> dict | None:
    """Photographs' figures by defect kind (``metrics.defect_metrics``): image AUROC per kind
    and, where the detector gives maps and the set has masks, pixel AUROC and PRO overall and
    per kind. None when the test images are this process's share only."""
    if len(data.x_test) != len(data.y_test):
        return None
    scores = np.asarray(test_out["score"], np.float64)
    maps, masks = test_out.get("map"), None
    shape = data.image_shape[:2]
    if maps is not None and data.test_masks is not None and np.size(maps) == len(scores) * np.prod(shape):
        maps = np.asarray(maps).reshape((-1, *shape))
        masks = np.asarray(data.test_masks[np.arange(len(scores))]).reshape(maps.shape)
    if masks is None or not masks.any():  # no map, or no mask to judge it by
        maps = masks = None
    out = defect_metrics(data.y_test, np.asarray(data.test_kinds), scores, masks, maps)
    out.pop("image_auroc")  # the run's AUROC
    return out


def _write_run_folder(out: Path, cfg: RunConfig, data, model, train, test_out, summary) -> None:
    fitted = model.fitted
    scores, threshold = test_out["score"], summary["threshold"]["value"]
    tmp = out / "scores.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "source_row", "label", "class", "score", "predicted"])
        rows = data.test_rows if data.test_rows is not None else np.arange(len(scores))
        for i, (r, y, c, s) in enumerate(zip(rows, data.y_test, data.test_classes, scores, strict=True)):
            w.writerow([i, int(r), int(y), int(c), f"{s:.8g}", int(s > threshold)])
    os.replace(tmp, out / "scores.csv")
    settings = {
        "preset": cfg.preset,
        "model": cfg.model,
        "validation_fraction": cfg.data.val_fraction,
        "dataset": cfg.data.dataset,
        "precision": cfg.precision,
        "seed": cfg.seed,
    }
    fitting.save(out / "model", model, train=train, settings=settings, scaler=data.scaler)
    write_json(out / "history.json", fitted.result.history)
    if cfg.plots:
        from jax_anomaly import plotting

        plots = out / "plots"
        plots.mkdir(exist_ok=True)
        if fitted.result.history:
            plotting.plot_loss_curves(plots / "loss.png", fitted.result.history)
        if data.y_test.min() != data.y_test.max():
            plotting.plot_score_histogram(plots / "scores.png", scores, data.y_test, threshold)
            plotting.plot_roc(plots / "roc.png", data.y_test, scores)
        detector = get_detector(cfg.detector)
        if detector.extra_plots is not None:
            first = (
                fitted.model(0) if isinstance(fitted, FittedStack) else fitted
            )  # an ensemble: its first model
            detector.extra_plots(first, plots, data.image_shape, key=jax.random.key(cfg.seed + 1))
        if "z" in test_out:  # latent codes (VAE means, AAE codes, GAN latents)
            plotting.plot_latent(plots / "latent.png", test_out["z"], data.y_test, data.test_classes)
        # a map without a reconstruction (the defect segmenter): the maps over the inputs
        maps_only = "reconstruction" not in test_out and "map" in test_out and data.image_shape is not None
        if "reconstruction" in test_out or maps_only:
            rng = np.random.default_rng(cfg.seed)
            held = data.y_test[: len(data.x_test)]  # the writer's share starts at row 0
            pick = np.concatenate(
                [
                    rng.choice(
                        np.flatnonzero(held == label),
                        size=min(4, int((held == label).sum())),
                        replace=False,
                    )
                    for label in (0, 1)
                ]
            ).astype(int)
        if maps_only:
            masks = None if data.test_masks is None else np.asarray(data.test_masks[pick])
            plotting.plot_defect_maps(
                plots / "maps.png",
                data.x_test[pick].reshape((-1, *data.image_shape)),
                np.asarray(test_out["map"])[pick].reshape((-1, *data.image_shape[:2])),
                None if masks is None else masks.reshape((-1, *data.image_shape[:2])),
                [f"{'anomaly' if data.y_test[i] else 'normal'} {scores[i]:.3g}" for i in pick],
            )
        elif "reconstruction" in test_out:
            recon = test_out["reconstruction"][pick]
            plotting.plot_reconstructions(
                plots / "reconstructions.png",
                data.x_test[pick],
                recon,
                scores[pick],
                data.y_test[pick],
                data.image_shape,
                maps=test_out["map"][pick] if "map" in test_out else None,
            )
    summary["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
    write_json(out / "metrics.json", summary)
    pages.write_run_report(out)


def format_summary(summary: dict) -> str:
    """A short human-readable summary of a run."""
    if summary.get("kind") == "series":
        from jax_anomaly.timeseries.run import format_series_summary

        return format_series_summary(summary)
    m, t = summary["metrics"], summary["timings"]

    def f(v):
        return "n/a" if v is None else f"{v:.4f}"

    (tn, fp), (fn, tp) = m["confusion_matrix"]
    lines = [
        f"{summary['detector']} on {summary['dataset']} "
        f"(normal: {summary['normal']}, seed {summary['seed']})",
        f"  AUROC {f(m['auroc'])}  AUPRC {f(m['auprc'])}" + (f"  ({m['note']})" if m.get("note") else ""),
        f"  threshold {summary['threshold']['spec']} = {m['threshold']:.6g}",
        f"  precision {m['precision']:.4f}  recall {m['recall']:.4f}  F1 {m['f1']:.4f}",
        f"  confusion [[tn {tn}, fp {fp}], [fn {fn}, tp {tp}]]: "
        f"{fp}/{m['normal_total']} normal flagged, {tp}/{m['anomalies_total']} anomalies caught",
    ]
    spec = thresholds.parse_threshold(summary["threshold"]["spec"])
    if spec.kind == "fpr" and m.get("false_positive_rate") is not None:
        lines.append(
            f"  false-positive rate on the test normals {m['false_positive_rate']:.4f} "
            f"(conformal guarantee: <= {spec.value:g} in expectation)"
        )
    for label, c in summary["compare_thresholds"].items():
        lines.append(
            f"  vs {label}: threshold {c['threshold']:.6g}  P {c['precision']:.4f}  "
            f"R {c['recall']:.4f}  F1 {c['f1']:.4f}"
        )
    d = summary.get("defects")
    if d:
        kinds = ", ".join(f"{k} {v:.4f}" for k, v in d["kind_auroc"].items())
        lines.append(f"  AUROC by defect kind: {kinds}")
        if "pixel_auroc" in d:
            lines.append(f"  pixel AUROC {f(d['pixel_auroc'])}  PRO (to 30% FPR) {f(d['pro'])}")
    rate = t["train_samples_per_second"]
    fit = (
        f"train {t['train_seconds']:.2f}s ({rate:,.0f} samples/s)"
        if rate
        else f"fit {t['train_seconds']:.2f}s (closed form)"
    )
    lines.append(f"  time: compile {t['compile_seconds']:.2f}s, {fit}, score {t['score_seconds']:.2f}s")
    return "\n".join(lines)


def print_summary(summary: dict, out: str | None = None, file=None) -> None:
    file = file or sys.stdout
    print(format_summary(summary), file=file)
    if out:
        print(f"  run folder: {out}", file=file)


def main_for(cfg: RunConfig, argv: list[str] | None = None) -> dict:
    """Entry point of an experiment script: ``--out``, ``--seed``, ``--data-dir`` and
    ``--quiet`` may override ``cfg``; runs it and prints the summary."""
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=cfg.out)
    p.add_argument("--seed", type=int, default=cfg.seed)
    p.add_argument("--data-dir", default=cfg.data.data_dir)
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    use_cpu_cores_as_devices()  # as the CLI does: one CPU device per core for scoring
    cfg = dataclasses.replace(
        cfg,
        out=args.out,
        seed=args.seed,
        progress=not args.quiet,
        data=dataclasses.replace(cfg.data, data_dir=args.data_dir),
    )
    summary = run(cfg)
    print_summary(summary, cfg.out)
    return summary
