"""2-D convolutions on CPU: the conv autoencoder's fit with XLA's convolutions
(``nn.Conv`` / ``nn.ConvTranspose``) against the unfolded-patch matrix products the conv
modules use (``models.conv.UnfoldConv2D`` / ``UnfoldConvTranspose2D``), on the magnetic
tile suite's shape: 761 grey 64x64 images.

    python experiments/bench_conv2d.py [--images 761] [--side 64] [--epochs 2]

Both forms hold the same parameters (tests/models/test_conv.py checks outputs and
gradients). Times are ``fit_seconds`` (compile apart) of ``AutoEncoder(model={'arch':
'conv'})`` for ``--epochs`` epochs, with the in-run ``jnp.dot`` peak beside them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import flax.linen as nn
import jax
import numpy as np

from jax_anomaly.benchmarks.measure import matmul_peak_gflops
from jax_anomaly.environment import versions
from jax_anomaly.models import conv


def fit(xla: bool, images: np.ndarray, epochs: int) -> dict:
    import jax_anomaly as ja

    original = conv.Conv2D, conv.ConvTranspose2D
    if xla:
        conv.Conv2D = lambda f, k, strides=1, name=None: nn.Conv(
            f, k, strides=strides, padding="SAME", name=name
        )
        conv.ConvTranspose2D = lambda f, k, strides=2, name=None: nn.ConvTranspose(
            f, k, strides=(strides, strides), padding="SAME", name=name
        )
    try:
        det = ja.AutoEncoder(model={"arch": "conv"}, epochs=epochs, seed=0, progress=False).fit(images)
        r = det.fitted_.result
        return {"epochs": epochs, "fit_seconds": r.train_seconds, "compile_seconds": r.compile_seconds}
    finally:
        conv.Conv2D, conv.ConvTranspose2D = original


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=761)
    p.add_argument("--side", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--out", default="results/benchmarks/bench_conv2d.json")
    a = p.parse_args()
    rng = np.random.default_rng(0)
    images = rng.random((a.images, a.side * a.side)).astype(np.float32)
    peak = matmul_peak_gflops()["gflops"]
    runs = {"unfold": fit(False, images, a.epochs), "xla": fit(True, images, a.epochs)}
    report = {
        "benchmark": "conv2d",
        "versions": versions(),
        "device": jax.devices()[0].device_kind,
        "settings": {"images": a.images, "side": a.side, "epochs": a.epochs},
        "matmul_peak_gflops": peak,
        "conv_ae_fit": runs,
        "speedup": runs["xla"]["fit_seconds"] / runs["unfold"]["fit_seconds"],
    }
    for name, r in runs.items():
        print(
            f"conv AE fit, {a.epochs} epochs of {a.images} {a.side}x{a.side} images, {name}: "
            f"{r['fit_seconds']:.1f} s (compile {r['compile_seconds']:.1f} s)"
        )
    print(f"speed-up {report['speedup']:.1f}x; matmul peak in this run {peak:.0f} GFLOP/s")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
