"""The AnoGAN latent search studied on MNIST (digit 0 normal): AUROC against search length
and schedule, the effect of the matmul precision, and f-AnoGAN's encoder against the
search on one GAN."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from jax_anomaly.benchmarks import report
from jax_anomaly.benchmarks.score import score_measurement, time_scoring
from jax_anomaly.benchmarks.train import load_normal
from jax_anomaly.config import TrainConfig, matmul_precision
from jax_anomaly.detectors import anogan, fanogan, get_detector
from jax_anomaly.training import Progress

TRADEOFF_VARIANTS = {
    "constant lr 1e-2": {"search_schedule": "constant", "search_lr": 1e-2, "search_init": 1},
    "cosine lr 5e-2, best of 16 z0": {"search_schedule": "cosine", "search_lr": 5e-2, "search_init": 16},
}


def _auroc(y, scores) -> float:
    return float(roc_auc_score(y, scores))


def bench_search(
    *,
    gan_epochs: int = 50,
    subset: int = 2000,
    step_counts: Sequence[int] = (10, 25, 50, 100, 200, 500),
    precisions: Sequence[str] = (),
    data_dir=None,
    out=None,
) -> dict:
    """Trains the tutorial GAN for ``gan_epochs`` on MNIST digit 0, then for each variant of
    ``TRADEOFF_VARIANTS`` and search length times the search over the first ``subset`` test
    images and reports AUROC; with ``precisions`` (``float32``, ``tf32``, ``bf16``) also the
    whole test set under each matmul precision, scores compared with the first."""
    det = get_detector("anogan")
    data = load_normal("mnist", (0,), data_dir)
    x_test, y = det.to_input(data.x_test), data.y_test
    rep = report.new_report(
        "search",
        {
            "gan_epochs": gan_epochs,
            "subset": subset,
            "step_counts": list(step_counts),
            "precisions": list(precisions),
        },
    )
    base = anogan.PRESETS["mnist_tutorial"]
    fitted = det.fit(
        base,
        TrainConfig(epochs=gan_epochs),
        det.to_input(data.x_train),
        key=jax.random.key(0),
        progress=False,
    )
    x = x_test[:subset]
    bar = Progress(len(TRADEOFF_VARIANTS) * len(step_counts), "search trade-off", unit="settings")
    for name, overrides in TRADEOFF_VARIANTS.items():
        for steps in step_counts:
            bar.update(len(rep["measurements"]))
            cfg = dataclasses.replace(base, search_steps=steps, **overrides)
            f = dataclasses.replace(fitted, config=cfg)
            t = time_scoring(det, f, x, jax.random.key(7), repeats=1)
            auroc = _auroc(y[:subset], t["scores"])
            row = score_measurement(f"{name}, {steps} steps", det, f, x, t, jax.random.key(7), auroc=auroc)
            rep["measurements"].append(
                {**row, "details": {"variant": name, "steps": steps, **row["details"]}}
            )
    reference = None
    for precision in precisions:
        with matmul_precision(precision):
            report.note_peak(rep, report.measure.matmul_peak_gflops()["gflops"])
            t = time_scoring(det, fitted, x_test, jax.random.key(3), repeats=1)
        scores = t["scores"]
        reference = scores if reference is None else reference
        rel = np.abs(scores - reference) / np.maximum(np.abs(reference), 1e-12)
        details = {
            "precision": precision,
            "auroc": _auroc(y, scores),
            "max_rel_score_change": float(rel.max()),
            "median_rel_score_change": float(np.median(rel)),
            "spearman_vs_first": float(spearmanr(scores, reference).statistic),
        }
        key = jax.random.key(3)
        rep["measurements"].append(
            score_measurement(f"precision {precision}", det, fitted, x_test, t, key, **details)
        )
    return report.finish(rep, out)


def bench_fanogan(
    *,
    epochs: int = 30,
    search_presets: Sequence[str] = ("mnist_fast", "mnist_tutorial"),
    subset: int = 2000,
    data_dir=None,
    out=None,
) -> dict:
    """f-AnoGAN's one-pass encoder against AnoGAN's latent search on the same GAN (MNIST,
    digit 0 normal): seconds per sample (compile apart) and AUROC on the first ``subset``
    test images; one f-AnoGAN is trained (``epochs`` GAN epochs, then ``epochs`` encoder ones)."""
    det, search_det = get_detector("fanogan"), get_detector("anogan")
    data = load_normal("mnist", (0,), data_dir)
    x_test, y = det.to_input(data.x_test)[:subset], data.y_test[:subset]
    rep = report.new_report(
        "fanogan", {"epochs": epochs, "subset": subset, "search_presets": list(search_presets)}
    )
    fitted = det.fit(
        fanogan.PRESETS["mnist_tutorial"],
        TrainConfig(epochs=epochs),
        det.to_input(data.x_train),
        det.to_input(data.x_val),
        key=jax.random.key(0),
        progress=False,
    )
    rows = [("f-AnoGAN encoder", det, fitted)]
    for preset in search_presets:
        search = {
            k: getattr(anogan.PRESETS[preset], k)
            for k in ("search_steps", "search_lr", "search_schedule", "search_init")
        }
        rows.append((f"search {preset}", search_det, fanogan.as_anogan(fitted, **search)))
    for name, d, f in rows:
        t = time_scoring(d, f, x_test, jax.random.key(1), repeats=1 if d is search_det else 3)
        auroc = _auroc(y, t["scores"])
        rep["measurements"].append(score_measurement(name, d, f, x_test, t, jax.random.key(1), auroc=auroc))
    return report.finish(rep, out)
