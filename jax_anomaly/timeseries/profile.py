"""Matrix-profile joins on the device: each query window's distance to its nearest reference
window, as blocked matrix products (``|q|^2 + |r|^2 - 2 q.r``), with the matrix profile's
exclusion zone (windows that overlap the query in time are not its neighbours). One pass
gives two profiles: against every reference window (the self-join of a series, the
published discord) and against the training windows only (the semi-supervised join)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jax_anomaly.timeseries.windows import sliding_windows

# Query windows per block: a block's distance matrix is (QUERY_BLOCK, references).
QUERY_BLOCK = 256
# Reference counts and window widths are padded to these multiples, so that series of
# similar length reuse one compiled block.
REF_MULTIPLE, WIDTH_MULTIPLE = 4096, 32
# The floor of a window's standard deviation in z-normalisation, as a fraction of the
# training series' standard deviation: near-flat windows are not blown up to unit variance.
STD_FLOOR = 0.01


def window_rows(x: np.ndarray, length: int, normalise: bool, std_floor: float = 0.0) -> np.ndarray:
    """``(W, length * C)`` windows of ``x`` (T, C); z-normalised per channel (mean 0, standard
    deviation max(std, ``std_floor``)) when ``normalise``."""
    w = sliding_windows(x, length).reshape(-1, length, x.shape[1]).astype(np.float64)
    if normalise:
        w = w - w.mean(axis=1, keepdims=True)
        std = w.std(axis=1, keepdims=True)
        w = w / np.maximum(std, max(std_floor, 1e-8))
    return w.reshape(len(w), -1).astype(np.float32)


@functools.partial(jax.jit, static_argnames="with_train")
def _block(q, q_pos, refs, r_sq, r_pos, r_train, exclusion, with_train=True):
    d2 = jnp.sum(q * q, axis=1)[:, None] + r_sq[None, :] - 2.0 * (q @ refs.T)
    near = jnp.abs(q_pos[:, None] - r_pos[None, :]) < exclusion
    d2 = jnp.where(near, jnp.inf, jnp.maximum(d2, 0.0))
    d_all = jnp.min(d2, axis=1)
    if not with_train:
        return d_all, d_all
    return d_all, jnp.min(jnp.where(r_train[None, :], d2, jnp.inf), axis=1)


def _pad(a: np.ndarray, rows: int, width: int, fill: float = 0.0) -> np.ndarray:
    out = np.full((rows, width) if a.ndim == 2 else (rows,), fill, a.dtype)
    if a.ndim == 2:
        out[: len(a), : a.shape[1]] = a
    else:
        out[: len(a)] = a
    return out


def join(
    queries: np.ndarray,
    query_pos: np.ndarray,
    refs: np.ndarray,
    ref_pos: np.ndarray,
    ref_train: np.ndarray,
    exclusion: int,
    with_train: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-reference distances of each query row, ``(all, train)``: the Euclidean
    distance to the nearest reference row whose position differs from the query's by at
    least ``exclusion`` (all of them; those with ``ref_train`` only). +inf where none is left.

    Args:
      queries: (Q, D) float32; ``query_pos`` (Q,) their start points.
      refs: (R, D) float32; ``ref_pos`` (R,) their start points; ``ref_train`` (R,) bool.
      exclusion: windows closer than this many points are not neighbours (0: none excluded).
      with_train: compute the training-only distances (False: the second result repeats
        the first, and the pass is cheaper).
    """
    q_n, width = queries.shape
    r_n = len(refs)
    width_p = -(-width // WIDTH_MULTIPLE) * WIDTH_MULTIPLE
    r_p = -(-r_n // REF_MULTIPLE) * REF_MULTIPLE
    refs_p = jnp.asarray(_pad(refs, r_p, width_p))
    r_sq = jnp.asarray(_pad(np.einsum("ij,ij->i", refs, refs).astype(np.float32), r_p, 0, np.inf))
    r_pos = jnp.asarray(_pad(np.asarray(ref_pos, np.int32), r_p, 0))
    r_train = jnp.asarray(_pad(np.asarray(ref_train, bool), r_p, 0))
    out_all, out_train = np.empty(q_n, np.float32), np.empty(q_n, np.float32)
    for s in range(0, q_n, QUERY_BLOCK):
        q = queries[s : s + QUERY_BLOCK]
        n = len(q)
        a, t = _block(
            jnp.asarray(_pad(q, QUERY_BLOCK, width_p)),
            jnp.asarray(_pad(np.asarray(query_pos[s : s + n], np.int32), QUERY_BLOCK, 0)),
            refs_p,
            r_sq,
            r_pos,
            r_train,
            jnp.int32(exclusion),
            with_train=with_train,
        )
        out_all[s : s + n], out_train[s : s + n] = np.asarray(a)[:n], np.asarray(t)[:n]
    return np.sqrt(out_all), np.sqrt(out_train)
