"""One run end to end: data -> one-class split -> fit -> score -> threshold -> metrics ->
run folder. The CLI, the experiments and the tests all go through ``run``."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from jax_anomaly import metrics as metrics_lib
from jax_anomaly import thresholds
from jax_anomaly.config import DataConfig, TrainConfig, matmul_precision, to_dict
from jax_anomaly.data import OneClassData, load_dataset, one_class_split
from jax_anomaly.estimators import FITTABLE_THRESHOLDS, TRAIN_PARAMS, estimator_for

CHECKPOINT_FILE = "checkpoint.msgpack"


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything one run needs; every random choice derives from ``seed``.

    Attributes:
      detector: registered detector name (``ae``, ...).
      preset: detector preset; None picks the one for the data set.
      model: overrides of the detector config's fields (e.g. ``{'latent': 8}``).
      data, train: data and optimisation settings.
      threshold: the threshold spec used for predictions (see ``thresholds``).
      compare_thresholds: more specs reported beside it (``best_f1`` is always added,
        labelled as an oracle).
      out: run folder; None writes nothing.
      precision: matmul precision of training and scoring (``float32``, ``tf32``, ``bf16``;
        None: the backend's default, which is TF32 on recent NVIDIA GPUs).
    """

    detector: str = "ae"
    preset: str | None = None
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    threshold: str = thresholds.DEFAULT_THRESHOLD
    compare_thresholds: tuple[str, ...] = ()
    seed: int = 0
    out: str | None = None
    plots: bool = True
    progress: bool = True
    precision: str | None = None

    def __post_init__(self):
        matmul_precision(self.precision)  # validates the name
        for spec in (self.threshold, *self.compare_thresholds):
            thresholds.parse_threshold(spec)
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")


def versions() -> dict:
    import flax
    import jax
    import optax
    import sklearn

    from jax_anomaly import __version__

    return {
        "jax_anomaly": __version__,
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "python": platform.python_version(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
    }


def write_json(path: Path, obj) -> None:
    """Writes JSON atomically (temp file + rename): a crash never leaves half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def prepare_data(cfg: RunConfig) -> OneClassData:
    """Loads the data set and applies the one-class protocol (seeded by ``cfg.seed``)."""
    d = cfg.data
    ds = load_dataset(
        d.dataset,
        data_dir=d.data_dir,
        source=d.source,
        seed=cfg.seed,
        test_fraction=d.test_fraction,
        label_column=d.label_column,
        synthetic=d.synthetic,
    )
    return one_class_split(ds, d.normal, val_fraction=d.val_fraction, seed=cfg.seed)


def run(cfg: RunConfig, data: OneClassData | None = None) -> dict:
    """Runs one experiment and returns its summary (the content of ``metrics.json``).

    Args:
      cfg: the run's configuration.
      data: already prepared data (skips loading; used by benchmarks and tests).

    Example::

        from jax_anomaly import DataConfig, RunConfig, TrainConfig, run
        summary = run(RunConfig(data=DataConfig("synthetic"), train=TrainConfig(epochs=50, batch_size=32),
                                threshold="mean_std:3", out="runs/synthetic"))
        print(summary["metrics"]["auroc"])
    """

    from jax_anomaly.detectors import get_detector

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
    if out:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", base)  # written first: a crashed run still says what it was

    t0 = time.perf_counter()
    if data is None:
        data = prepare_data(cfg)
    data_seconds = time.perf_counter() - t0

    if cfg.train.resume and not out:
        raise ValueError("--resume needs the run folder (--out) of the run to continue")
    main_spec = thresholds.parse_threshold(cfg.threshold)
    # The run folder holds the checkpoint; with --resume or --checkpoint-every only.
    keep = out and (cfg.train.checkpoint_every or cfg.train.resume)
    train = dataclasses.replace(cfg.train, checkpoint=str(out / CHECKPOINT_FILE) if keep else None)
    est = estimator_for(
        cfg.detector,
        **{name: getattr(train, name) for name in TRAIN_PARAMS},
        preset=cfg.preset,
        model=cfg.model,
        # Rules on test scores are applied below; the estimator fits the default beside them.
        threshold=cfg.threshold if main_spec.kind in FITTABLE_THRESHOLDS else thresholds.DEFAULT_THRESHOLD,
        validation_fraction=0.0,  # the one-class split already held out x_val
        dataset=cfg.data.dataset,
        precision=cfg.precision,
        seed=cfg.seed,
        progress=cfg.progress,
    )
    est.fit(data.x_train, validation_data=data.x_val if len(data.x_val) else None)
    fitted = est.fitted_

    if cfg.progress:
        print(f"scoring {len(data.x_test)} test samples ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    test_out = est.score_details(data.x_test)
    score_seconds = time.perf_counter() - t0 + est.validation_seconds_
    val_scores = est.validation_scores_ if len(data.x_val) else None
    test_scores = test_out["score"]

    def threshold_of(spec):
        return thresholds.select_threshold(
            spec, val_scores=val_scores, test_scores=test_scores, test_labels=data.y_test
        )

    threshold = est.threshold_ if main_spec.kind in FITTABLE_THRESHOLDS else threshold_of(cfg.threshold)
    result = metrics_lib.evaluate(data.y_test, test_scores, threshold, classes=data.test_classes)
    compare = {}
    specs = list(cfg.compare_thresholds)
    if data.y_test.any() and "best_f1" not in specs:
        specs.append("best_f1")
    for spec in specs:
        m = metrics_lib.evaluate(data.y_test, test_scores, threshold_of(spec))
        label = f"{spec} (oracle: uses test labels)" if spec == "best_f1" else spec
        compare[label] = {k: m[k] for k in ("threshold", "precision", "recall", "f1", "confusion_matrix")}

    history = fitted.result.history
    summary = {
        **base,
        "threshold": {
            "spec": cfg.threshold,
            "value": threshold,
            "from": "test scores"
            if main_spec.kind not in FITTABLE_THRESHOLDS
            else f"{est.threshold_source_} scores of normal samples",
        },
        "metrics": result,
        "compare_thresholds": compare,
        "data": {
            "n_train": len(data.x_train),
            "n_val": len(data.x_val),
            "n_test": len(data.x_test),
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
            * len(data.x_train)
            / max(fitted.result.train_seconds, 1e-9),
            "score_seconds": score_seconds,
        },
    }
    if out:
        _write_run_folder(out, cfg, data, est, test_out, summary)
    return summary


def _write_run_folder(out: Path, cfg: RunConfig, data, est, test_out, summary) -> None:
    from jax_anomaly.detectors import get_detector

    fitted = est.fitted_
    scores, threshold = test_out["score"], summary["threshold"]["value"]
    tmp = out / "scores.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "label", "class", "score", "predicted"])
        for i, (y, c, s) in enumerate(zip(data.y_test, data.test_classes, scores, strict=True)):
            w.writerow([i, int(y), int(c), f"{s:.8g}", int(s > threshold)])
    os.replace(tmp, out / "scores.csv")
    est.save(out / "model", scaler=data.scaler)
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
            import jax

            detector.extra_plots(fitted, plots, data.image_shape, key=jax.random.key(cfg.seed + 1))
        if "z" in test_out:  # latent codes (VAE means, AAE codes, GAN latents)
            plotting.plot_latent(plots / "latent.png", test_out["z"], data.y_test, data.test_classes)
        if "reconstruction" in test_out:
            rng = np.random.default_rng(cfg.seed)
            pick = np.concatenate(
                [
                    rng.choice(
                        np.flatnonzero(data.y_test == label),
                        size=min(4, int((data.y_test == label).sum())),
                        replace=False,
                    )
                    for label in (0, 1)
                ]
            ).astype(int)
            recon = test_out["reconstruction"][pick]
            plotting.plot_reconstructions(
                plots / "reconstructions.png",
                data.x_test[pick],
                recon,
                scores[pick],
                data.y_test[pick],
                data.image_shape,
            )
    summary["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
    write_json(out / "metrics.json", summary)


def format_summary(summary: dict) -> str:
    """A short human-readable summary of a run."""
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
    lines.append(
        f"  time: compile {t['compile_seconds']:.2f}s, train {t['train_seconds']:.2f}s "
        f"({t['train_samples_per_second']:,.0f} samples/s), score {t['score_seconds']:.2f}s"
    )
    return "\n".join(lines)


def print_summary(summary: dict, out: str | None = None, file=None) -> None:
    file = file or sys.stdout
    print(format_summary(summary), file=file)
    if out:
        print(f"  run folder: {out}", file=file)


def main_for(cfg: RunConfig, argv: list[str] | None = None) -> dict:
    """Entry point of an experiment script: ``--out``, ``--seed``, ``--data-dir`` and
    ``--quiet`` may override ``cfg``; runs it and prints the summary."""
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--out", default=cfg.out)
    p.add_argument("--seed", type=int, default=cfg.seed)
    p.add_argument("--data-dir", default=cfg.data.data_dir)
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    from jax_anomaly.sharding import use_cpu_cores_as_devices

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
