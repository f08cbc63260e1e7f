"""The ``ucr`` suite: the UCR anomaly archive's series, each detector fitted on the series'
training part and scored over the whole series; the archive's accuracy (the top-scored test
point inside the anomaly padded by 100 points) and VUS-PR, beside published accuracies."""

from __future__ import annotations

import time

import numpy as np

from jax_anomaly.config import TrainConfig
from jax_anomaly.data.collections import load_ucr, series_files, ucr_files
from jax_anomaly.data.series import load_tsb
from jax_anomaly.suites.tables import Published, read_published_overall
from jax_anomaly.timeseries.detect import fit_series, score_series
from jax_anomaly.timeseries.metrics import series_metrics

DETECTORS = ("discords", "knn", "discord", "ae")
SEEDS = (0,)
# ``train``: TrainConfig fields of a deep detector over the defaults; ``model``: its config
# overrides; ``window``: a fixed window (None: each method's automatic one); ``folder``: a
# folder of archive files and/or TSB-AD-U/M CSV files to run instead of the archive in the
# data roots (multivariate series included).
OPTIONS = {"data_dir": None, "margin": 100, "train": {}, "model": {}, "window": None, "folder": None}


def sets(options: dict) -> list[str]:
    if options.get("folder"):
        return list(series_files(options["folder"]))
    return [f"{i:03d}" for i in ucr_files(options.get("data_dir"))]


def load(name: str, options: dict):
    if options.get("folder"):
        files = series_files(options["folder"])
        if name not in files:
            raise ValueError(f"no series '{name}' in {options['folder']}")
        path = files[name]
        return load_tsb(path) if path.suffix == ".csv" else load_ucr(str(path))
    return load_ucr(name, options.get("data_dir"))


def ucr_accuracy(
    scores: np.ndarray, train_end: int, begin: int, end: int, margin: int = 100, events=()
) -> tuple[bool, int]:
    """The archive's score: ``(solved, top)``: whether the highest-scoring point after the
    training part (the first one, on ties) lies in ``[begin - margin, end + margin)`` (or in
    any of ``events``' ``(begin, end)`` so padded, for series with several)."""
    top = train_end + int(np.argmax(np.asarray(scores)[train_end:]))
    return any(b - margin <= top < e + margin for b, e in (events or ((begin, end),))), top


def run_group(detector: str, name: str, seeds: list[int], options: dict) -> dict:
    """``{seed: metrics}`` of ``detector`` (a series method, defaults: automatic window) on
    series ``name``."""
    s = load(name, options)
    out = {}
    for seed in seeds:
        t0 = time.perf_counter()
        model = fit_series(
            detector,
            s.values[: s.train_end],
            seed=seed,
            window=options.get("window"),
            model=options.get("model") or None,
            train=TrainConfig(**options["train"]) if options.get("train") else None,
        )
        scores = score_series(model, s.values, seed=seed)["score"]
        seconds = time.perf_counter() - t0
        solved, top = ucr_accuracy(
            scores, s.train_end, s.begin, s.end, options.get("margin", 100), s.anomalies
        )
        m = series_metrics(s.labels[s.train_end :], scores[s.train_end :], model.window)
        out[seed] = {
            "accuracy": float(solved),
            "top": top,
            "vus_pr": m["vus_pr"],
            "auroc": m["auc_roc"],
            "window": model.window,
            "n_points": len(s.values),
            "seconds": seconds,
        }
    return out


def published(options: dict) -> Published:
    return Published(
        per_set={},
        overall=read_published_overall("ucr"),
        source="accuracy over all 250 series of the archive (TimeVQVAE-AD paper's collection; KDD Cup 2021)",
        note="published figures are over the 250 series of the archive; ours over the series here "
        "(183, some kept back for independent checks). Accuracy: the top-scored point after the "
        f"training part lies within the anomaly padded by {options.get('margin', 100)} points.",
    )
