"""Flax Linen modules; the only package that imports ``flax.linen``."""

from jax_anomaly.models.conv import (
    ARCHS,
    ConvClassifier,
    ConvDecoder,
    ConvDiscriminator,
    ConvEncoder,
    ConvGenerator,
    SegmentationNet,
    check_arch,
    image_shape_for,
    square_image_shape,
)
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
from jax_anomaly.models.factory import (
    EncoderDecoder,
    autoencoder_pair,
    check_autoencoder_config,
    encoder_decoder,
    generator_discriminator,
    hidden_activation,
)

__all__ = [
    "ACTIVATIONS",
    "ARCHS",
    "MLP",
    "ConvClassifier",
    "ConvDecoder",
    "ConvDiscriminator",
    "ConvEncoder",
    "ConvGenerator",
    "SegmentationNet",
    "Decoder",
    "DenseAutoencoder",
    "Discriminator",
    "Encoder",
    "EncoderDecoder",
    "Generator",
    "activation",
    "check_arch",
    "autoencoder_pair",
    "check_autoencoder_config",
    "encoder_decoder",
    "generator_discriminator",
    "hidden_activation",
    "image_shape_for",
    "square_image_shape",
]
