"""Per-sample losses shared by the detectors (pure jax.numpy)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

RECONSTRUCTION_LOSSES = ("mse", "bce")
_EPS = 1e-7


def per_sample_loss(recon: jax.Array, x: jax.Array, loss: str) -> jax.Array:
    """Per-sample reconstruction error ``(..., D) -> (...)``: MSE or binary cross-entropy
    (mean over features)."""
    if loss == "mse":
        return jnp.mean(jnp.square(recon - x), axis=-1)
    p = jnp.clip(recon, _EPS, 1.0 - _EPS)
    return -jnp.mean(x * jnp.log(p) + (1.0 - x) * jnp.log1p(-p), axis=-1)


def bce(logits: jax.Array, target: float) -> jax.Array:
    """Elementwise sigmoid cross-entropy of ``logits`` against a constant label (GAN losses)."""
    return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, target))
