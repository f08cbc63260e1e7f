"""Training and scoring throughput of the dense autoencoder on Fashion-MNIST class 0.

    python experiments/bench_ae.py [--epochs 20] [--batch-size 128] [--unroll 1] [--out results/bench_ae.json]

Setup of the issue: 6000 class-0 training images, 784-128-64-12-3 mirrored, batch 128,
20 epochs. Reports samples/s over epochs 2..N (epoch 1 and compile time separately),
achieved GFLOP/s from the layer sizes, and the ratio to a jnp.dot fp32 peak measured in the
same process. Runs in about 30 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

from jax_anomaly import bench
from jax_anomaly.config import TrainConfig
from jax_anomaly.data import load_dataset
from jax_anomaly.detectors import autoencoder as ae


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--unroll", type=int, default=1)
    p.add_argument("--data-dir")
    p.add_argument("--out", default="results/bench_ae.json")
    args = p.parse_args(argv)

    ds = load_dataset("fashion_mnist", data_dir=args.data_dir)
    x = (ds.x_train[ds.y_train == 0] / np.float32(255)).astype(np.float32)
    cfg = ae.PRESETS["mnist_tutorial"]
    layers = [x.shape[1], *cfg.hidden, cfg.latent, *reversed(cfg.hidden), x.shape[1]]
    train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, unroll=args.unroll)

    peak = bench.matmul_peak_gflops()
    fitted = ae.fit(cfg, train, x, None, key=jax.random.key(0), progress=False)
    r = fitted.result
    epoch_s = [h["seconds"] for h in r.history]
    steady = epoch_s[1:] if len(epoch_s) > 1 else epoch_s
    samples_per_s = len(x) / float(np.median(steady))
    flops = bench.dense_train_flops(layers)
    gflops = samples_per_s * flops / 1e9

    ae.score(fitted, x)  # compile the scorer for this shape
    t0 = time.perf_counter()
    ae.score(fitted, x)
    score_s = time.perf_counter() - t0
    peak_after = bench.matmul_peak_gflops()

    result = {
        "benchmark": "bench_ae",
        "device": str(jax.devices()[0]),
        "backend": jax.default_backend(),
        "n_samples": len(x),
        "layers": layers,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "unroll": args.unroll,
        "compile_seconds": r.compile_seconds,
        "first_epoch_seconds": epoch_s[0],
        "epoch_seconds": bench.summarize(steady),
        "train_samples_per_second": samples_per_s,
        "train_flops_per_sample": flops,
        "train_gflops": gflops,
        "matmul_peak_gflops": peak["gflops"],
        "matmul_peak_gflops_after": peak_after["gflops"],
        "fraction_of_peak": gflops / max(peak["gflops"], peak_after["gflops"]),
        "score_samples_per_second": len(x) / score_s,
        "final_loss": r.history[-1]["loss"],
        "peak_rss_mib": bench.peak_rss_mib(),
    }
    for k, v in result.items():
        print(f"{k:28s} {v:,.4g}" if isinstance(v, float) else f"{k:28s} {v}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
