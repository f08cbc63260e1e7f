"""Transformation prediction on the device: training and scoring throughput of ``geom``
(28x28 images, the K copies made inside the step) and ``goad`` (tabular rows, M random maps),
with the share of the in-run ``jnp.dot`` peak their steps reach.

    python experiments/bench_geom.py [--rows 2048] [--epochs 2] [--batch-size 64]

FLOPs per step come from XLA's cost analysis of the compiled step (``Compiled.cost_analysis``);
times exclude compilation (reported apart). Writes ``results/benchmarks/bench_geom.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jax_anomaly.benchmarks.measure import matmul_peak_gflops
from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors import get_detector
from jax_anomaly.environment import versions


def step_flops(detector, cfg, train: TrainConfig, x: np.ndarray) -> float:
    """XLA's FLOP count of one compiled training step on a batch of ``train.batch_size`` rows."""
    phase = detector.phases[0]
    state = phase.init_state(cfg, train, x.shape[1], jax.random.key(0))
    step = phase.make_step(cfg, train, x.shape[1])
    batch = jnp.asarray(x[: train.batch_size])
    compiled = jax.jit(step).lower(state, batch, jnp.ones(len(batch)), jax.random.key(1)).compile()
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list | tuple) else analysis
    return float(analysis.get("flops", 0.0))


def measure(name: str, preset: str, x: np.ndarray, epochs: int, batch_size: int, peak: float) -> dict:
    det = get_detector(name)
    cfg = det.config(preset)
    train = TrainConfig(epochs=epochs, batch_size=batch_size)
    fitted = det.fit(cfg, train, x, key=jax.random.key(0), progress=False)
    r = fitted.result
    train_seconds = sum(h["seconds"] for h in r.history if h.get("phase") == "train")
    rows_per_s = epochs * len(x) / train_seconds
    flops = step_flops(det, cfg, train, x)
    steps_per_s = rows_per_s / batch_size
    det.score(fitted, x)  # compile
    t0 = time.perf_counter()
    det.score(fitted, x)
    score_seconds = time.perf_counter() - t0
    k = cfg.n_transforms
    return {
        "detector": name,
        "preset": preset,
        "K": k,
        "rows": len(x),
        "features": x.shape[1],
        "epochs": epochs,
        "batch_size": batch_size,
        "train_rows_per_s": rows_per_s,
        "train_copies_per_s": rows_per_s * k,
        "compile_seconds": r.compile_seconds,
        "step_gflop": flops / 1e9,
        "train_gflops": flops * steps_per_s / 1e9,
        "train_share_of_peak": flops * steps_per_s / 1e9 / peak,
        "score_rows_per_s": len(x) / score_seconds,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=2048)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", default="results/benchmarks/bench_geom.json")
    a = p.parse_args()
    rng = np.random.default_rng(0)
    peak = matmul_peak_gflops()["gflops"]
    runs = [
        measure("geom", "default", rng.random((a.rows, 784), dtype=np.float32), a.epochs, a.batch_size, peak),
        measure("goad", "default", rng.random((a.rows * 4, 32), dtype=np.float32), a.epochs, 128, peak),
    ]
    report = {
        "benchmark": "geom",
        "versions": versions(),
        "device": jax.devices()[0].device_kind,
        "matmul_peak_gflops": peak,
        "runs": runs,
    }
    for r in runs:
        print(
            f"{r['detector']} (K={r['K']}, {r['rows']} rows x {r['features']}, batch {r['batch_size']}): "
            f"train {r['train_rows_per_s']:,.0f} rows/s = {r['train_copies_per_s']:,.0f} copies/s, "
            f"{r['train_gflops']:.1f} GFLOP/s = {100 * r['train_share_of_peak']:.0f} % of the "
            f"{peak:.0f} GFLOP/s matmul peak; score {r['score_rows_per_s']:,.0f} rows/s; "
            f"compile {r['compile_seconds']:.1f} s"
        )
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
