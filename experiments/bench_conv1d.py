"""1-D convolutions on CPU: XLA's convolution (``nn.Conv``) against the unfolded-window
matrix product (``models.sequence.UnfoldConv1D``) in the layers of ``conv1d_ae``, and the
whole ``conv1d_ae`` fit with each.

    python experiments/bench_conv1d.py [--window 128] [--batch 128] [--epochs 10]

Both forms hold the same parameters; the script checks that their outputs and gradients
agree before timing. Times are medians of compiled calls (compile time apart), with the
in-run ``jnp.dot`` peak beside them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jax_anomaly.benchmarks.measure import matmul_peak_gflops
from jax_anomaly.environment import versions
from jax_anomaly.models import sequence
from jax_anomaly.models.sequence import UnfoldConv1D


class _XLAConv(nn.Module):
    """``UnfoldConv1D``'s reference: XLA's convolution with the same parameters."""

    features: int
    kernel_size: int
    strides: int = 1

    @nn.compact
    def __call__(self, x):
        return nn.Conv(self.features, (self.kernel_size,), strides=self.strides, padding="SAME", name="conv")(
            x
        )


def _timed(fn, *args, repeats=20):
    jax.block_until_ready(fn(*args))
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        out.append(time.perf_counter() - t0)
    return float(np.median(out))


def layer_case(n, length, c_in, c_out, stride):
    x = jax.random.normal(jax.random.key(0), (n, length, c_in))
    unfold, xla = UnfoldConv1D(c_out, 5, stride), _XLAConv(c_out, 5, stride)
    p = unfold.init(jax.random.key(1), x)
    p_xla = {"params": {"conv": p["params"]}}

    def loss(apply, params):
        return lambda params, x: jnp.sum(apply(params, x) ** 2)

    grads = {}
    times = {}
    for name, mod, params in (("xla", xla, p_xla), ("unfold", unfold, p)):
        step = jax.jit(jax.value_and_grad(loss(mod.apply, params)))
        t0 = time.perf_counter()
        jax.block_until_ready(step(params, x))
        compile_s = time.perf_counter() - t0
        times[name] = {"step_seconds": _timed(step, params, x), "compile_seconds": compile_s}
        g = step(params, x)[1]["params"]
        grads[name] = g["conv"] if "conv" in g else g
    diff = max(
        float(
            jnp.max(
                jnp.abs(grads["xla"][k] - grads["unfold"][k]) / (1e-6 + jnp.max(jnp.abs(grads["xla"][k])))
            )
        )
        for k in ("kernel", "bias")
    )
    return {"shape": [n, length, c_in, c_out, stride], "relative_grad_difference": diff, **times}


def series_fit(nn_conv: bool, epochs: int, length: int = 1200, window: int = 183) -> dict:
    """``SeriesDetector('conv1d_ae', epochs=epochs)`` on a noisy sine of ``length`` points with
    ``window`` (InternalBleeding16's training part and automatic window), its convolutions
    as ``UnfoldConv1D`` or, ``nn_conv``, XLA's: the training loop as a user runs it (whole
    epochs in a ``lax.scan``)."""
    import jax_anomaly as ja

    original = sequence.UnfoldConv1D
    if nn_conv:
        sequence.UnfoldConv1D = lambda f, k, strides=1, name=None: nn.Conv(
            f, (k,), strides=strides, padding="SAME", name=name
        )
    try:
        t = np.arange(length)
        x = np.sin(2 * np.pi * t / 90) + 0.05 * np.random.default_rng(0).normal(size=length)
        det = ja.SeriesDetector("conv1d_ae", window=window, epochs=epochs, seed=0, progress=False).fit(x)
        m = det.model_
        return {"epochs": epochs, "fit_seconds": m.fit_seconds, "compile_seconds": m.compile_seconds}
    finally:
        sequence.UnfoldConv1D = original


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--window", type=int, default=128)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--epochs", type=int, default=10, help="conv1d_ae training epochs timed with each form")
    p.add_argument("--out", default="results/benchmarks/bench_conv1d.json")
    a = p.parse_args()
    n, length = a.batch, a.window
    peak = matmul_peak_gflops()["gflops"]
    layers = [
        layer_case(n, length, 1, 16, 2),
        layer_case(n, length // 2, 16, 32, 2),
        layer_case(n, length // 2, 32, 16, 1),
        layer_case(n, length, 16, 16, 1),
    ]
    steps = {"xla": series_fit(True, a.epochs), "unfold": series_fit(False, a.epochs)}
    report = {
        "benchmark": "conv1d",
        "versions": versions(),
        "device": jax.devices()[0].device_kind,
        "settings": {"batch": n, "window": length},
        "matmul_peak_gflops": peak,
        "layers": layers,
        "conv1d_ae_fit": steps,
        "speedup": steps["xla"]["fit_seconds"] / steps["unfold"]["fit_seconds"],
    }
    for row in layers:
        print(
            f"layer {row['shape']}: xla {1e3 * row['xla']['step_seconds']:.2f} ms, "
            f"unfold {1e3 * row['unfold']['step_seconds']:.2f} ms "
            f"(grads agree to {row['relative_grad_difference']:.1e})"
        )
    print(
        f"conv1d_ae fit, {a.epochs} epochs (1,200 points, window 183): "
        f"xla {steps['xla']['fit_seconds']:.1f} s, unfold {steps['unfold']['fit_seconds']:.1f} s "
        f"({report['speedup']:.1f}x); jnp.dot peak {peak:.0f} GFLOP/s"
    )
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
