"""Module pairs by architecture name (``'dense'``, ``'conv'``, or the sequence archs
``'conv1d'`` and ``'gru'``), so a detector config's ``arch`` field picks its networks in one place."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax

from jax_anomaly.models import conv, sequence
from jax_anomaly.models.dense import Decoder, Discriminator, Encoder, Generator, activation


class EncoderDecoder(nn.Module):
    """``decoder(encoder(x))``, each with its own parameter tree (``params['encoder']``,
    ``params['decoder']``)."""

    encoder: nn.Module
    decoder: nn.Module

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.decoder(self.encoder(x))


def autoencoder_pair(cfg, n_features: int) -> tuple[nn.Module, nn.Module]:
    """``(encoder, decoder)`` of an autoencoder config: one with fields ``arch``, ``latent``,
    ``hidden``, ``channels``, ``activation`` and ``output_activation`` (AE, AAE)."""
    return encoder_decoder(
        cfg.arch,
        n_features,
        encoder_out=cfg.latent,
        hidden=cfg.hidden,
        channels=cfg.channels,
        activation=cfg.activation,
        output_activation=cfg.output_activation,
        in_channels=getattr(cfg, "in_channels", 1),
    )


def encoder_decoder(
    arch: str,
    n_features: int,
    *,
    encoder_out: int,
    hidden: Sequence[int] = (),
    channels: Sequence[int] = (),
    activation: str | None = None,
    output_activation: str = "sigmoid",
    outputs_per_feature: int = 1,
    in_channels: int = 1,
) -> tuple[nn.Module, nn.Module]:
    """An encoder ``(..., D) -> (..., encoder_out)`` and a decoder ``(..., latent) -> (..., D*k)``:
    dense (``hidden`` layers, mirrored in the decoder) or conv (``channels`` stride-2 levels,
    mirrored; the data must be square images), or a sequence arch over windows of
    ``in_channels`` channels (``models.sequence``). With ``k = outputs_per_feature`` > 1 (e.g. a
    Gaussian's mean and log-variance) the decoder output reshapes to ``(..., D, k)``.
    ``activation`` None: ``hidden_activation(arch)``."""
    activation = hidden_activation(arch, activation)
    if arch == "dense":
        return (
            Encoder(tuple(hidden), encoder_out, activation),
            Decoder(tuple(reversed(hidden)), n_features * outputs_per_feature, activation, output_activation),
        )
    if arch in sequence.SEQUENCE_ARCHS:
        return sequence.sequence_pair(
            arch,
            n_features,
            in_channels=in_channels,
            encoder_out=encoder_out,
            hidden=hidden,
            channels=channels,
            activation=activation,
            output_activation=output_activation,
            outputs_per_feature=outputs_per_feature,
        )
    height, width, colours = conv.image_shape_for(n_features, len(channels))
    return (  # the decoder's outputs per feature sit beside each other, as (D, outputs) flattened
        conv.ConvEncoder((height, width, colours), tuple(channels), encoder_out, activation),
        conv.ConvDecoder(
            (height, width, colours * outputs_per_feature),
            tuple(reversed(channels)),
            activation,
            output_activation,
        ),
    )


def hidden_activation(arch: str, name: str | None = None) -> str:
    """``name``, or when None the default hidden activation of ``arch``: ReLU for dense,
    LeakyReLU(0.2) for the convolutional and sequence archs. (A ReLU conv autoencoder got
    stuck predicting the mean image on
    MNIST class 5, seed 0: training loss flat at 0.109 from the first epoch, AUROC 0.51;
    with LeakyReLU the loss fell to 0.065 in two epochs.)"""
    return name if name is not None else ("relu" if arch == "dense" else "leaky_relu")


def check_autoencoder_config(cfg, tuple_fields: Sequence[str] = ("hidden", "channels")) -> None:
    """Validates a frozen detector config's autoencoder fields in place: ``tuple_fields`` made
    tuples of ints, ``hidden`` >= 1, ``latent`` >= 1, ``arch``/``channels``, ``activation``
    (None allowed: the arch default) and ``output_activation`` if the config has one."""
    for name in tuple_fields:
        object.__setattr__(cfg, name, tuple(int(v) for v in getattr(cfg, name)))
    if any(h < 1 for h in cfg.hidden) or cfg.latent < 1:
        raise ValueError(f"layer sizes must be >= 1: hidden {cfg.hidden}, latent {cfg.latent}")
    conv.check_arch(cfg.arch, cfg.channels, conv.ARCHS + sequence.SEQUENCE_ARCHS)
    if cfg.arch in sequence.SEQUENCE_ARCHS and getattr(cfg, "in_channels", 1) < 1:
        raise ValueError(f"in_channels must be >= 1, got {cfg.in_channels}")
    activation(hidden_activation(cfg.arch, cfg.activation))
    activation(getattr(cfg, "output_activation", "linear"))


def generator_discriminator(
    arch: str, n_features: int, *, g_hidden: Sequence[int], d_hidden: Sequence[int], channels: Sequence[int]
) -> tuple[nn.Module, nn.Module]:
    """A generator ``(..., latent) -> (..., D)`` (tanh) and a discriminator ``(..., D) -> logits``:
    MLPs (``g_hidden``, ``d_hidden``) or the DCGAN pair (``channels``; data must be square images)."""
    if arch == "dense":
        return Generator((*g_hidden, n_features)), Discriminator(tuple(d_hidden))
    shape = conv.image_shape_for(n_features, len(channels))
    return conv.ConvGenerator(shape, tuple(reversed(channels))), conv.ConvDiscriminator(
        shape, tuple(channels)
    )
