"""Data-parallel training and sharded scoring on 1, 2, 4, 8 ... devices."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import jax
import numpy as np

from jax_anomaly.benchmarks import report
from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors import Fitted, anogan, get_detector
from jax_anomaly.detectors import autoencoder as ae
from jax_anomaly.sharding import make_mesh, map_samples


def bench_scaling(
    *,
    device_counts: Sequence[int] = (1, 2, 4, 8),
    n_train: int = 6000,
    epochs: int = 4,
    batch_size: int = 128,
    n_score: int = 2000,
    steps: int = 50,
    out=None,
) -> dict:
    """Dense AE training (784-128-64-12-3, global batch ``batch_size``) and the AnoGAN search
    (MNIST tutorial sizes, ``n_score`` samples x ``steps``) on each device count (those
    visible). Inputs are uniform random 784-d rows: throughput does not depend on the
    values, and the benchmark then needs no data files. Virtual CPU devices share the same
    cores: they show that the sharded path is correct and what it costs, not a speed-up."""
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(n_train, 784)).astype(np.float32)
    x_score = (2 * rng.uniform(size=(n_score, 784)) - 1).astype(np.float32)
    ae_det, gan_det = get_detector("ae"), get_detector("anogan")
    gan_cfg = dataclasses.replace(anogan.PRESETS["mnist_tutorial"], search_steps=steps)
    params = gan_det.phases[0].params_of(gan_det.init_state(gan_cfg, TrainConfig(), 784, jax.random.key(0)))
    gan = Fitted("anogan", gan_cfg, params, None, 784)
    (z0,) = anogan.initial_latents(gan_cfg, x_score, jax.random.key(1))
    counts = [c for c in device_counts if c <= jax.device_count()]
    rep = report.new_report(
        "scaling",
        {
            "device_counts": counts,
            "n_train": n_train,
            "batch_size": batch_size,
            "n_score": n_score,
            "search_steps": steps,
            "epochs": epochs,
        },
    )
    reference = None
    for d in counts:
        train = TrainConfig(epochs=epochs, batch_size=batch_size, devices=d)
        fitted = ae_det.fit(ae.PRESETS["mnist_tutorial"], train, x, key=jax.random.key(0), progress=False)
        epoch_s = [h["seconds"] for h in fitted.result.history][1:]
        mesh = make_mesh(d)
        search = gan_det.sharded_scorer(gan_cfg, 784, n_score, mesh)
        map_samples(search, mesh, gan.params, x_score, z0)  # compiles
        t0 = time.perf_counter()
        scores = map_samples(search, mesh, gan.params, x_score, z0)["score"]
        search_s = time.perf_counter() - t0
        reference = scores if reference is None else reference
        rep["measurements"] += [
            report.measurement(
                f"train ae, {d} device(s)",
                samples=n_train,
                seconds=float(np.median(epoch_s)),
                flops_per_sample=None,
                compile_seconds=fitted.result.compile_seconds,
                details={
                    "devices": d,
                    "per_device_batch": -(-batch_size // d),
                    "final_loss": fitted.result.history[-1]["loss"],
                },
            ),
            report.measurement(
                f"search, {d} device(s)",
                samples=n_score,
                seconds=search_s,
                flops_per_sample=None,
                compile_seconds=None,
                details={"devices": d, "max_score_diff_vs_1": float(np.max(np.abs(scores - reference)))},
            ),
        ]
    return report.finish(rep, out)
