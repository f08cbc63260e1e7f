"""Dense (MLP) Flax Linen modules: encoder, decoder, autoencoder, generator, discriminator."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS = {
    "relu": nn.relu,
    "leaky_relu": lambda x: nn.leaky_relu(x, negative_slope=0.2),
    "tanh": jnp.tanh,
    "sigmoid": nn.sigmoid,
    "elu": nn.elu,
    "gelu": nn.gelu,
    "linear": lambda x: x,
}


def activation(name: str):
    """The activation function called ``name`` (one of ``ACTIVATIONS``)."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation '{name}'; expected one of {sorted(ACTIVATIONS)}") from None


class MLP(nn.Module):
    """Dense layers ``features[0] -> ... -> features[-1]``; ``activation`` between layers,
    ``final_activation`` after the last one."""

    features: Sequence[int]
    activation: str = "relu"
    final_activation: str = "linear"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = activation(self.activation)
        for i, width in enumerate(self.features):
            x = nn.Dense(width, name=f"dense_{i}")(x)
            if i < len(self.features) - 1:
                x = act(x)
        return activation(self.final_activation)(x)


class Encoder(nn.Module):
    """``(B, D) -> (B, latent)``: hidden layers, then a linear bottleneck."""

    hidden: Sequence[int]
    latent: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return MLP((*self.hidden, self.latent), self.activation, "linear", name="mlp")(x)


class Decoder(nn.Module):
    """``(B, latent) -> (B, D)``: the mirrored hidden layers, then ``output_activation``."""

    hidden: Sequence[int]
    out_features: int
    activation: str = "relu"
    output_activation: str = "sigmoid"

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        return MLP((*self.hidden, self.out_features), self.activation, self.output_activation, name="mlp")(z)


class DenseAutoencoder(nn.Module):
    """Encoder ``D -> hidden -> latent`` and mirrored decoder ``latent -> hidden[::-1] -> D``,
    each with its own parameter tree (``params['encoder']``, ``params['decoder']``)."""

    hidden: Sequence[int]
    latent: int
    out_features: int
    activation: str = "relu"
    output_activation: str = "sigmoid"

    def setup(self):
        self.encoder = Encoder(self.hidden, self.latent, self.activation)
        self.decoder = Decoder(
            tuple(reversed(self.hidden)), self.out_features, self.activation, self.output_activation
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.decoder(self.encoder(x))


class Generator(nn.Module):
    """``(B, latent) -> (B, D)`` MLP generator, tanh output for data in [-1, 1]."""

    features: Sequence[int]
    activation: str = "relu"
    output_activation: str = "tanh"

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        return MLP(self.features, self.activation, self.output_activation, name="mlp")(z)


class Discriminator(nn.Module):
    """``(B, D) -> logits (B,)``; with ``return_features`` also the last hidden layer
    (used for AnoGAN's feature-matching loss)."""

    hidden: Sequence[int]
    activation: str = "leaky_relu"

    @nn.compact
    def __call__(self, x: jax.Array, return_features: bool = False):
        act = activation(self.activation)
        for i, width in enumerate(self.hidden):
            x = act(nn.Dense(width, name=f"dense_{i}")(x))
        logits = nn.Dense(1, name="logit")(x)[..., 0]
        return (logits, x) if return_features else logits
