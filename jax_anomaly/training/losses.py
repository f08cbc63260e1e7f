"""Per-sample losses shared by the detectors (pure jax.numpy)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

RECONSTRUCTION_LOSSES = ("mse", "bce")
_EPS = 1e-7


def per_feature_loss(recon: jax.Array, x: jax.Array, loss: str) -> jax.Array:
    """Reconstruction error per feature ``(..., D) -> (..., D)``: squared error or binary
    cross-entropy."""
    if loss == "mse":
        return jnp.square(recon - x)
    p = jnp.clip(recon, _EPS, 1.0 - _EPS)
    return -(x * jnp.log(p) + (1.0 - x) * jnp.log1p(-p))


def per_sample_loss(recon: jax.Array, x: jax.Array, loss: str) -> jax.Array:
    """Per-sample reconstruction error ``(..., D) -> (...)``: MSE or binary cross-entropy
    (mean over features)."""
    return jnp.mean(per_feature_loss(recon, x, loss), axis=-1)


def bce(logits: jax.Array, target: float) -> jax.Array:
    """Elementwise sigmoid cross-entropy of ``logits`` against a constant label (GAN losses)."""
    return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, target))
