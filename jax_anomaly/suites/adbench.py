"""The ``adbench`` suite: ADBench's classical tabular sets in DTE's protocols (semi-supervised
by default, unsupervised as an option), every detector as a user gets it by default, beside
DTE's published table of 26 methods."""

from __future__ import annotations

import numpy as np

from jax_anomaly.data.collections import MAX_ROWS, adbench_files, load_adbench, protocol_split
from jax_anomaly.estimators import estimator_for
from jax_anomaly.metrics import ranking_metrics
from jax_anomaly.suites.tables import Published, read_published_csv

DETECTORS = ("tabular", "knn", "iforest", "pca", "ecod", "ae", "vae")
SEEDS = (0, 1, 2, 3, 4)
# ``estimator``: estimator parameters over the defaults (e.g. ``{"epochs": 5}``); empty: what a
# user gets with no choice made.
OPTIONS = {"protocol": "semi", "max_rows": MAX_ROWS, "data_dir": None, "estimator": {}}


def sets(options: dict) -> list[str]:
    return list(adbench_files(options.get("data_dir")))


def split(name: str, seed: int, options: dict, data: tuple | None = None):
    """Set ``name`` under the suite's protocol for ``seed`` (``data``: its ``(X, y)``, already
    loaded)."""
    x, y = data if data is not None else load_adbench(name, options.get("data_dir"))
    return protocol_split(
        x, y, protocol=options["protocol"], seed=seed, max_rows=options.get("max_rows", MAX_ROWS)
    )


def _metrics(split, scores) -> dict:
    m = ranking_metrics(split.y_test, scores)
    return {
        "auroc": m["auroc"],
        "auprc": m["auprc"],
        "n_train": len(split.x_train),
        "n_test": len(split.y_test),
        "resampled": split.resampled,
        "subsampled": split.subsampled,
    }


def run_group(detector: str, name: str, seeds: list[int], options: dict) -> dict:
    """``{seed: metrics}`` of ``detector`` (its estimator with default settings, seeded) on
    set ``name``. Seeds whose protocol draws the same rows (no resampling or subsampling: the
    semi-supervised split takes no random draw) train as one program on the model axis
    (``ja.sweep`` over the seed) where the detector trains by gradient steps."""
    from jax_anomaly.detectors import get_detector
    from jax_anomaly.sweep import sweep

    params = dict(options.get("estimator") or {})
    data = load_adbench(name, options.get("data_dir"))
    first = split(name, seeds[0], options, data)
    same_rows = options["protocol"] == "semi" and not (first.resampled or first.subsampled)
    out = {}
    if same_rows and len(seeds) > 1 and get_detector(detector).trains:
        sw = sweep(estimator_for(detector, **params), seed=list(seeds)).fit(first.x_train)
        scores = sw.decision_function(first.x_test)
        for k, seed in enumerate(seeds):
            out[seed] = _metrics(first, np.asarray(scores[k]))
        return out
    for seed in seeds:
        part = first if seed == seeds[0] else split(name, seed, options, data)
        est = estimator_for(detector, seed=seed, **params).fit(part.x_train)
        out[seed] = _metrics(part, est.decision_function(part.x_test))
    return out


def published(options: dict) -> Published:
    protocol = options["protocol"]
    note = (
        "DTE's semi-supervised protocol: train on the first half of the normal rows, test on the "
        "other half and every anomaly"
        if protocol == "semi"
        else "DTE's unsupervised protocol: train on a bootstrap of all rows, test on all rows"
    ) + (
        f"; StandardScaler on the training rows; sets under 1,000 rows are resampled with "
        f"replacement to 1,000 (this copies rows into both train and test), sets over "
        f"{options.get('max_rows', MAX_ROWS):,} rows are subsampled to it (DTE's run.py: 50,000). "
        "Ours: each estimator's defaults, which hold out 10 % of the training rows for the threshold."
    )
    return Published(
        per_set=read_published_csv(f"adbench_{protocol}"),
        overall={},
        source="DTE (Livernoche et al., ICLR 2024), README of vicliv/DTE, Table 1 (semi) / 2 (unsup)",
        note=note,
    )
