"""Training from the host (``TrainConfig.stream_rows``) against training with the rows on the
device: the dense autoencoder's epoch time on a memory-mapped ``.npy`` file of random rows,
for several chunk sizes, with the in-run ``jnp.dot`` peak beside the times.

    python experiments/bench_stream.py [--rows 200000] [--features 256] [--epochs 4] [--chunks 4096,32768]

Times are the median epoch after the first (``fit_loop``'s history; compile apart). The
streamed fits end with the on-device fit's parameters (tests/training/test_loop.py checks
it); the figure here is the cost of gathering each chunk's rows on the host and sending
them. On a CPU the "device" is the same memory, so this is the gather's overhead alone.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import jax
import numpy as np

from jax_anomaly.benchmarks.measure import matmul_peak_gflops
from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors import autoencoder as ae
from jax_anomaly.environment import versions


def epoch_seconds(x, train: TrainConfig) -> dict:
    fitted = ae.DETECTOR.fit(ae.DETECTOR.config(), train, x, key=jax.random.key(0), progress=False)
    seconds = [h["seconds"] for h in fitted.result.history[1:]]
    return {
        "epoch_seconds": float(np.median(seconds)),
        "rows_per_second": len(x) / float(np.median(seconds)),
        "compile_seconds": fitted.result.compile_seconds,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--features", type=int, default=256)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--chunks", default="4096,32768", help="stream_rows values to time")
    p.add_argument("--out", default="results/benchmarks/bench_stream.json")
    a = p.parse_args()
    train = TrainConfig(epochs=a.epochs, batch_size=a.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.npy"
        rows = np.lib.format.open_memmap(path, "w+", np.float32, (a.rows, a.features))
        rng = np.random.default_rng(0)
        for start in range(0, a.rows, 65536):
            rows[start : start + 65536] = rng.random((min(65536, a.rows - start), a.features), np.float32)
        rows.flush()
        mapped = np.load(path, mmap_mode="r")
        peak = matmul_peak_gflops()["gflops"]
        runs = {"on_device": epoch_seconds(np.asarray(mapped).copy(), train)}
        for chunk in (int(c) for c in a.chunks.split(",")):
            runs[f"stream_{chunk}"] = epoch_seconds(
                mapped, TrainConfig(**{**vars(train), "stream_rows": chunk})
            )
    report = {
        "benchmark": "stream",
        "versions": versions(),
        "device": jax.devices()[0].device_kind,
        "settings": {"rows": a.rows, "features": a.features, "epochs": a.epochs, "batch_size": a.batch_size},
        "matmul_peak_gflops": peak,
        "runs": runs,
    }
    base = runs["on_device"]["epoch_seconds"]
    for name, r in runs.items():
        print(
            f"{name}: {r['epoch_seconds']:.2f} s an epoch of {a.rows} rows ({r['epoch_seconds'] / base:.2f}x "
            f"on-device; compile {r['compile_seconds']:.1f} s)"
        )
    print(f"matmul peak in this run {peak:.0f} GFLOP/s")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
