"""Throughput measurement: FLOP counts from layer sizes, an in-run matmul peak, timed runs.

Figures are meant to be read as ratios measured in the same process (achieved GFLOP/s
against the ``jnp.dot`` peak of that run), since shared CPUs drift between runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def dense_forward_flops(layers: Sequence[int]) -> int:
    """FLOPs of one sample's forward pass through dense layers ``layers[0] -> ... -> layers[-1]``
    (2 per multiply-add; biases and activations are negligible and left out)."""
    return int(sum(2 * a * b for a, b in zip(layers[:-1], layers[1:], strict=True)))


def dense_train_flops(layers: Sequence[int]) -> int:
    """Forward + backward FLOPs of one training sample: the backward pass costs two matmuls
    per layer (weight and input gradients) except the first layer, whose input needs no gradient."""
    fwd = dense_forward_flops(layers)
    return int(fwd + 2 * fwd - 2 * layers[0] * layers[1])


def block(tree):
    return jax.tree.map(lambda a: a.block_until_ready() if hasattr(a, "block_until_ready") else a, tree)


def time_calls(fn: Callable, *args, repeats: int = 3) -> list[float]:
    """Wall seconds of ``repeats`` calls of an already compiled ``fn`` (results blocked on)."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        block(fn(*args))
        out.append(time.perf_counter() - t0)
    return out


def matmul_peak_gflops(n: int = 2048, repeats: int = 5, dtype=jnp.float32) -> dict:
    """Dense ``n x n`` matmul GFLOP/s with ``jnp.dot`` in this process (best of ``repeats``)."""
    key_a, key_b = jax.random.split(jax.random.key(0))
    a = jax.random.normal(key_a, (n, n), dtype)
    b = jax.random.normal(key_b, (n, n), dtype)
    f = jax.jit(jnp.dot)
    block(f(a, b))
    best = min(time_calls(f, a, b, repeats=repeats))
    return {"n": n, "dtype": jnp.dtype(dtype).name, "seconds": best, "gflops": 2 * n**3 / best / 1e9}


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB (host memory; on CPU this is where arrays live)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def device_memory_mib() -> float | None:
    """Peak device memory in use (MiB) where the backend reports it (GPU), else None."""
    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / 2**20


def summarize(values: Sequence[float]) -> dict:
    v = np.asarray(values, np.float64)
    return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max())}
