"""One run on a time series end to end: series -> windows -> fit -> point scores -> threshold
-> series metrics -> run folder (scores, detected events, plot, report). ``runner.run`` hands
series data sets here, so the CLI, the experiments and the tests share it."""

from __future__ import annotations

import csv
import datetime
import os
import time
from pathlib import Path

import numpy as np

from jax_anomaly import pages
from jax_anomaly.config import to_dict
from jax_anomaly.data.series import Series, label_events, load_series
from jax_anomaly.environment import versions
from jax_anomaly.persistence import is_writer, write_json
from jax_anomaly.timeseries.detect import SeriesModel, fit_series, score_series
from jax_anomaly.timeseries.metrics import series_metrics

# The metrics a series run reports, in table order.
METRIC_NAMES = (
    "vus_pr",
    "vus_roc",
    "auc_pr",
    "auc_roc",
    "range_f1",
    "precision",
    "recall",
    "f1",
    "pa_f1",
    "threshold",
)


def prepare_series(cfg) -> Series:
    """The run's series (``cfg``: a ``runner.RunConfig``)."""
    d = cfg.data
    return load_series(
        d.dataset, data_dir=d.data_dir, test_fraction=d.test_fraction, seed=cfg.seed, synthetic=d.synthetic
    )


def fit_run_series(cfg, series: Series) -> SeriesModel:
    """``fit_series`` with the settings of a ``RunConfig``."""
    d = cfg.data
    return fit_series(
        cfg.detector,
        series.train,
        window=d.window,
        stride=d.stride,
        rule=d.point_rule,
        preset=cfg.preset,
        model=cfg.model,
        train=cfg.train,
        threshold=cfg.threshold,
        val_fraction=d.val_fraction,
        seed=cfg.seed,
        precision=cfg.precision,
        progress=cfg.progress,
    )


def run_series(cfg, series: Series | None = None) -> dict:
    """Runs ``cfg`` (a ``runner.RunConfig`` whose data set is a series) and returns its summary
    (the content of ``metrics.json``)."""
    if not cfg.threshold.fittable:
        raise ValueError(
            f"threshold '{cfg.threshold}' needs test labels or scores; a series run fits its threshold"
        )
    if cfg.train.resume or cfg.train.checkpoint_every:
        raise ValueError("--resume and --checkpoint-every are not supported for time series runs yet")
    out = Path(cfg.out) if cfg.out and is_writer() else None  # one writer (runner.run)
    base = {
        "kind": "series",
        "detector": cfg.detector,
        "dataset": cfg.data.dataset,
        "seed": cfg.seed,
        "config": {"run": to_dict(cfg)},
        "versions": versions(),
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    if out:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", base)
    t0 = time.perf_counter()
    series = series if series is not None else prepare_series(cfg)
    data_seconds = time.perf_counter() - t0
    model = fit_run_series(cfg, series)
    t0 = time.perf_counter()
    scored = score_series(model, series.test, seed=cfg.seed, precision=cfg.precision, progress=cfg.progress)
    score_seconds = time.perf_counter() - t0
    scores = scored["score"]
    metrics = series_metrics(series.test_labels, scores, model.window, model.threshold)
    detected = detected_events(scores, model.threshold)
    summary = {
        **base,
        "metric_names": list(METRIC_NAMES),
        "threshold": {
            "spec": str(model.spec),
            "value": model.threshold,
            "from": f"{model.calibration} point scores of the training series",
        },
        "metrics": metrics,
        "window": {"length": model.window, "stride": model.stride, "point_rule": model.rule},
        "data": {
            "n_train_points": len(series.train),
            "n_test_points": len(series.test),
            "channels": series.n_channels,
            "n_test_events": len(series.events),
        },
        "events": {"labelled": [list(e) for e in series.events], "detected": detected},
        "timings": {
            "data_seconds": data_seconds,
            "compile_seconds": model.compile_seconds,
            "train_seconds": model.fit_seconds,
            "score_seconds": score_seconds,
        },
    }
    if model.is_deep:
        summary["config"]["model"] = to_dict(model.model.fitted.config)
    if out:
        _write_series_folder(out, cfg, series, model, scores, summary)
    return summary


def detected_events(scores: np.ndarray, threshold: float) -> list[list]:
    """``[start, end_exclusive, max score]`` of each run of points scoring above ``threshold``."""
    return [[s, e, float(scores[s:e].max())] for s, e, _ in label_events(scores > threshold)]


def _write_series_folder(out: Path, cfg, series: Series, model: SeriesModel, scores, summary) -> None:
    tmp = out / "scores.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "label", "score", "predicted"])
        for i, (y, s) in enumerate(zip(series.test_labels, scores, strict=True)):
            w.writerow([i, int(y), f"{s:.8g}", int(s > model.threshold)])
    os.replace(tmp, out / "scores.csv")
    with open(out / "events.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kind", "start", "end", "detail"])
        for s, e, kind in series.events:
            w.writerow(["labelled", s, e, kind])
        for s, e, peak in summary["events"]["detected"]:
            w.writerow(["detected", s, e, f"max score {peak:.6g}"])
    if cfg.plots:
        from jax_anomaly import plotting

        plots = out / "plots"
        plots.mkdir(exist_ok=True)
        plotting.plot_series(
            plots / "series.png",
            series.test,
            scores,
            model.threshold,
            series.events,
            title=f"{cfg.detector} on {series.name}",
        )
        if model.is_deep and model.model.fitted.result.history:
            plotting.plot_loss_curves(plots / "loss.png", model.model.fitted.result.history)
    summary["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
    write_json(out / "metrics.json", summary)
    pages.write_run_report(out)


def format_series_summary(summary: dict) -> str:
    """A short human-readable summary of a series run."""
    m, t, w = summary["metrics"], summary["timings"], summary["window"]
    events = summary["events"]
    return "\n".join(
        [
            f"{summary['detector']} on {summary['dataset']} (window {w['length']}, seed {summary['seed']})",
            f"  VUS-PR {m['vus_pr']:.4f}  VUS-ROC {m['vus_roc']:.4f}  "
            f"AUC-PR {m['auc_pr']:.4f}  AUC-ROC {m['auc_roc']:.4f}",
            f"  threshold {summary['threshold']['spec']} = {m['threshold']:.6g}: "
            f"precision {m['precision']:.4f} recall {m['recall']:.4f}  range-F1 {m['range_f1']:.4f}",
            f"  events: {len(events['labelled'])} labelled, {len(events['detected'])} detected",
            f"  (PA-F1 {m['pa_f1']:.4f}: {m['pa_f1_note']})",
            f"  time: compile {t['compile_seconds']:.2f}s, train {t['train_seconds']:.2f}s, "
            f"score {t['score_seconds']:.2f}s",
        ]
    )
