"""Flax Linen modules; the only package that imports ``flax.linen``."""

from jax_anomaly.models.dense import (
    ACTIVATIONS,
    MLP,
    Decoder,
    DenseAutoencoder,
    Discriminator,
    Encoder,
    Generator,
    activation,
)

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "Decoder",
    "DenseAutoencoder",
    "Discriminator",
    "Encoder",
    "Generator",
    "activation",
]
