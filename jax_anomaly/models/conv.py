"""Convolutional Flax Linen modules for square single-channel images: encoder, decoder
(a conv autoencoder / conv VAE) and the DCGAN generator and discriminator.

Every module takes and returns flat rows ``(..., D)`` like the dense ones, so the detectors,
the data layer and the scoring code do not change with the architecture; the image shape
``(H, W, C)`` is a field. Each stride-2 level halves the side, so ``H`` and ``W`` must divide by
``2 ** len(channels)`` (28x28 MNIST: two levels, 28 -> 14 -> 7). No batch normalisation: the
modules stay pure functions of ``params`` (no mutable batch statistics), which keeps the
per-sample (vmapped) AnoGAN search and the jitted steps simple.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax

from jax_anomaly.models.dense import activation

_KERNEL = (4, 4)


def image_shape_for(n_features: int, levels: int) -> tuple[int, int, int]:
    """``(side, side, 1)`` for ``n_features = side**2`` with ``side`` divisible by ``2**levels``.

    Raises:
      ValueError: the features are not a square image the conv stack can halve ``levels`` times.
    """
    side = int(round(n_features**0.5))
    if side * side != n_features or side % (2**levels):
        raise ValueError(
            f"arch 'conv' needs square single-channel images whose side divides by 2**{levels} "
            f"(one halving per entry of channels); got {n_features} features"
        )
    return side, side, 1


def _to_images(x: jax.Array, image_shape) -> tuple[jax.Array, tuple[int, ...]]:
    lead = x.shape[:-1]
    return x.reshape((-1, *image_shape)), lead


class ConvEncoder(nn.Module):
    """``(..., H*W*C) -> (..., out)``: stride-2 convolutions ``channels``, then a linear layer."""

    image_shape: tuple[int, int, int]
    channels: Sequence[int]
    out: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = activation(self.activation)
        h, lead = _to_images(x, self.image_shape)
        for i, c in enumerate(self.channels):
            h = act(nn.Conv(c, _KERNEL, strides=2, padding="SAME", name=f"conv_{i}")(h))
        h = h.reshape((h.shape[0], -1))
        return nn.Dense(self.out, name="out")(h).reshape((*lead, self.out))


class ConvDecoder(nn.Module):
    """``(..., latent) -> (..., H*W*C)``: a linear layer to the smallest feature map, then
    stride-2 transposed convolutions ``channels`` (widest first) back to the image."""

    image_shape: tuple[int, int, int]
    channels: Sequence[int]
    activation: str = "relu"
    output_activation: str = "sigmoid"

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        act = activation(self.activation)
        height, width, colours = self.image_shape
        levels = len(self.channels)
        lead = z.shape[:-1]
        h = z.reshape((-1, z.shape[-1]))
        small = (height // 2**levels, width // 2**levels, self.channels[0])
        h = act(nn.Dense(small[0] * small[1] * small[2], name="project")(h)).reshape((-1, *small))
        for i, c in enumerate(self.channels[1:]):
            h = act(nn.ConvTranspose(c, _KERNEL, strides=(2, 2), padding="SAME", name=f"deconv_{i}")(h))
        h = nn.ConvTranspose(colours, _KERNEL, strides=(2, 2), padding="SAME", name="image")(h)
        return activation(self.output_activation)(h).reshape((*lead, height * width * colours))


class ConvGenerator(nn.Module):
    """DCGAN generator ``(..., latent) -> (..., D)`` with tanh output (data in [-1, 1])."""

    image_shape: tuple[int, int, int]
    channels: Sequence[int] = (64, 32)

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        return ConvDecoder(self.image_shape, self.channels, "relu", "tanh", name="decoder")(z)


class ConvDiscriminator(nn.Module):
    """DCGAN discriminator ``(..., D) -> logits (...)``: stride-2 convolutions with
    LeakyReLU(0.2); with ``return_features`` also the flattened last feature map (AnoGAN's
    and f-AnoGAN's feature-matching losses)."""

    image_shape: tuple[int, int, int]
    channels: Sequence[int] = (32, 64)

    @nn.compact
    def __call__(self, x: jax.Array, return_features: bool = False):
        act = activation("leaky_relu")
        h, lead = _to_images(x, self.image_shape)
        for i, c in enumerate(self.channels):
            h = act(nn.Conv(c, _KERNEL, strides=2, padding="SAME", name=f"conv_{i}")(h))
        features = h.reshape((h.shape[0], -1))
        logits = nn.Dense(1, name="logit")(features)[..., 0].reshape(lead)
        return (logits, features.reshape((*lead, -1))) if return_features else logits


ARCHS = ("dense", "conv")


def check_arch(arch: str, channels: Sequence[int], allowed: Sequence[str] = ARCHS) -> None:
    """Validates an ``arch`` name (one of ``allowed``) and its conv ``channels`` (used by the
    detector configs)."""
    if arch not in allowed:
        raise ValueError(f"unknown arch '{arch}'; expected one of {tuple(allowed)}")
    if arch in ("conv", "conv1d") and (not channels or any(c < 1 for c in channels)):
        raise ValueError(f"arch '{arch}' needs channels >= 1, got {tuple(channels)}")
