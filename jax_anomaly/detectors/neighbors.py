"""Exact k-nearest-neighbour distances as blocked matrix products in JAX: the reference rows
are held in blocks, and one sample's distances to a block are one matrix-vector product
(vmapped over a chunk of samples, a matrix product), merged into a running top-k."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# Reference rows per block: a chunk of 4096 samples against one block is a (4096, 2048)
# distance matrix, 32 MiB in float32.
BLOCK_ROWS = 2048


def reference_blocks(x: np.ndarray, block_rows: int = BLOCK_ROWS) -> dict[str, np.ndarray]:
    """The reference rows ``x`` (M, D) as ``{'rows': (B, R, D), 'sq': (B, R)}``: B blocks of R
    rows (R = min(block_rows, M)), the last padded with zero rows whose squared norm is +inf
    (so a padding row is never a neighbour)."""
    x = np.asarray(x, np.float32)
    m, d = x.shape
    r = max(1, min(block_rows, m))
    b = -(-m // r)
    rows = np.zeros((b * r, d), np.float32)
    rows[:m] = x
    sq = np.full(b * r, np.inf, np.float32)
    sq[:m] = np.einsum("ij,ij->i", x, x)
    return {"rows": rows.reshape(b, r, d), "sq": sq.reshape(b, r)}


def nearest_distances(blocks: dict, x: jax.Array, k: int) -> jax.Array:
    """Euclidean distances from ONE sample ``x`` (D,) to its ``k`` nearest reference rows,
    ascending (k,); +inf where there are fewer than k rows. Vmap it over samples: each block
    then costs one matrix product."""
    xx = jnp.dot(x, x)

    def block(best, blk):
        rows, sq = blk
        d2 = jnp.maximum(sq - 2.0 * (rows @ x) + xx, 0.0)  # (R,); +inf on padding rows
        if k == 1:  # the nearest only (the discord): a min, no top-k sort
            return jnp.minimum(best, jnp.min(d2, keepdims=True)), None
        merged = jnp.concatenate([best, d2])
        return -jax.lax.top_k(-merged, k)[0], None

    init = jnp.full((k,), jnp.inf, x.dtype)
    best, _ = jax.lax.scan(block, init, (blocks["rows"], blocks["sq"]))
    return jnp.sqrt(best)


def znormalise(windows: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Each row minus its mean, over its standard deviation (rows of constant value become
    zeros): the matrix profile's z-normalised subsequences."""
    w = np.asarray(windows, np.float64)
    w = w - w.mean(axis=1, keepdims=True)
    std = w.std(axis=1, keepdims=True)
    return (w / np.where(std > eps, std, 1.0)).astype(np.float32)
