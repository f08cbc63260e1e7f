"""Module pairs by architecture name (``'dense'`` or ``'conv'``), so a detector config's
``arch`` field picks its networks in one place."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax

from jax_anomaly.models.conv import (
    ConvDecoder,
    ConvDiscriminator,
    ConvEncoder,
    ConvGenerator,
    image_shape_for,
)
from jax_anomaly.models.dense import Decoder, Discriminator, Encoder, Generator


class EncoderDecoder(nn.Module):
    """``decoder(encoder(x))``, each with its own parameter tree (``params['encoder']``,
    ``params['decoder']``)."""

    encoder: nn.Module
    decoder: nn.Module

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.decoder(self.encoder(x))


def encoder_decoder(
    arch: str,
    n_features: int,
    *,
    encoder_out: int,
    hidden: Sequence[int] = (),
    channels: Sequence[int] = (),
    activation: str = "relu",
    output_activation: str = "sigmoid",
    outputs_per_feature: int = 1,
) -> tuple[nn.Module, nn.Module]:
    """An encoder ``(..., D) -> (..., encoder_out)`` and a decoder ``(..., latent) -> (..., D*k)``:
    dense (``hidden`` layers, mirrored in the decoder) or conv (``channels`` stride-2 levels,
    mirrored; the data must be square images). With ``k = outputs_per_feature`` > 1 (e.g. a
    Gaussian's mean and log-variance) the decoder output reshapes to ``(..., D, k)``."""
    if arch == "dense":
        return (
            Encoder(tuple(hidden), encoder_out, activation),
            Decoder(tuple(reversed(hidden)), n_features * outputs_per_feature, activation, output_activation),
        )
    height, width, _ = image_shape_for(n_features, len(channels))
    return (
        ConvEncoder((height, width, 1), tuple(channels), encoder_out, activation),
        ConvDecoder(
            (height, width, outputs_per_feature), tuple(reversed(channels)), activation, output_activation
        ),
    )


def generator_discriminator(
    arch: str, n_features: int, *, g_hidden: Sequence[int], d_hidden: Sequence[int], channels: Sequence[int]
) -> tuple[nn.Module, nn.Module]:
    """A generator ``(..., latent) -> (..., D)`` (tanh) and a discriminator ``(..., D) -> logits``:
    MLPs (``g_hidden``, ``d_hidden``) or the DCGAN pair (``channels``; data must be square images)."""
    if arch == "dense":
        return Generator((*g_hidden, n_features)), Discriminator(tuple(d_hidden))
    shape = image_shape_for(n_features, len(channels))
    return ConvGenerator(shape, tuple(reversed(channels))), ConvDiscriminator(shape, tuple(channels))
