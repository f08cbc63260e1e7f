"""Convolutional Flax Linen modules for square grey or RGB images: encoder, decoder
(a conv autoencoder / conv VAE) and the DCGAN generator and discriminator.

Every module takes and returns flat rows ``(..., D)`` like the dense ones, so the detectors,
the data layer and the scoring code do not change with the architecture; the image shape
``(H, W, C)`` is a field. Each stride-2 level halves the side, so ``H`` and ``W`` must divide by
``2 ** len(channels)`` (28x28 MNIST: two levels, 28 -> 14 -> 7). No batch normalisation: the
modules stay pure functions of ``params`` (no mutable batch statistics), which keeps the
per-sample (vmapped) AnoGAN search and the jitted steps simple.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_anomaly.models.dense import activation

_KERNEL = (4, 4)


def square_image_shape(n_features: int, divisor: int) -> tuple[int, int, int] | None:
    """``(side, side, 1)`` for rows of ``n_features = side**2`` (grey) or ``(side, side, 3)``
    for ``3 * side**2`` (RGB, each pixel's three values together), where ``side`` divides by
    ``divisor``; None for any other row length. 3 x a square is never a square: the length
    tells which."""
    for colours in (1, 3):
        side = math.isqrt(n_features // colours)
        if side * side * colours == n_features and side % divisor == 0:
            return side, side, colours
    return None


def image_shape_for(n_features: int, levels: int) -> tuple[int, int, int]:
    """``square_image_shape`` with ``side`` divisible by ``2**levels``.

    Raises:
      ValueError: the features are not a square image the conv stack can halve ``levels`` times.
    """
    shape = square_image_shape(n_features, 2**levels)
    if shape is not None:
        return shape
    raise ValueError(
        f"arch 'conv' needs square grey or RGB images whose side divides by 2**{levels} "
        f"(one halving per entry of channels); got {n_features} features"
    )


def _unfold_conv(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """A VALID convolution of an already padded ``x`` (N, H, W, C) with ``kernel``
    (KH, KW, C, F) at ``stride``, as ONE matrix product over the stacked shifted slices."""
    kh, kw, c, f = kernel.shape
    n, h, w, _ = x.shape
    oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    patches = jnp.stack(
        [
            x[:, i : i + (oh - 1) * stride + 1 : stride, j : j + (ow - 1) * stride + 1 : stride]
            for i in range(kh)
            for j in range(kw)
        ],
        axis=3,
    )  # (N, OH, OW, KH*KW, C)
    return patches.reshape((n, oh, ow, kh * kw * c)) @ kernel.reshape((kh * kw * c, f))


class UnfoldConv2D(nn.Module):
    """``nn.Conv(features, kernel_size, strides, padding='SAME')`` on images (N, H, W, C) as
    one matrix product over unfolded patches: the same parameters (``kernel`` (KH, KW, C, F),
    ``bias``), initialisers and outputs (tested equal). XLA's CPU convolutions inside the
    training loop (whole epochs in a ``lax.scan``) were the slow path of the 1-D conv AE
    (``sequence.UnfoldConv1D``); this is the 2-D counterpart."""

    features: int
    kernel_size: tuple[int, int]
    strides: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = self.kernel_size
        c, s = x.shape[-1], self.strides
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (kh, kw, c, self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        pads = []
        for size, k in ((x.shape[1], kh), (x.shape[2], kw)):
            out = -(-size // s)
            pad = max((out - 1) * s + k - size, 0)
            pads.append((pad // 2, pad - pad // 2))
        x = jnp.pad(x, ((0, 0), *pads, (0, 0)))
        return _unfold_conv(x, kernel, s) + bias


class UnfoldConvTranspose2D(nn.Module):
    """``nn.ConvTranspose(features, kernel_size, strides=(s, s), padding='SAME')`` (its
    default ``transpose_kernel=False``) as matrix products, one per output phase: the
    transposed convolution is a stride-1 convolution of the input dilated by ``s`` (zeros
    between pixels, padded as ``lax.conv_transpose`` pads for 'SAME'); output pixels
    ``(s*u + r1, s*v + r2)`` only meet the kernel taps that fall on input pixels, so each of
    the ``s*s`` phases is a small convolution of the undilated input with those taps (no
    multiplications by the dilation's zeros). Same parameters and outputs (tested equal)."""

    features: int
    kernel_size: tuple[int, int]
    strides: int = 2

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = self.kernel_size
        n, h, w, c = x.shape
        s = self.strides
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (kh, kw, c, self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        # Per axis and phase r: the taps j that land on input pixels and their input offsets.
        taps = []
        for k in (kh, kw):
            total = k + s - 2
            before = k - 1 if s > k - 1 else -(-total // 2)
            taps.append(
                [
                    [(j, (r + j - before) // s) for j in range(k) if (r + j - before) % s == 0]
                    for r in range(s)
                ]
            )
        reach = max(abs(o) for axis in taps for phase in axis for _, o in phase) + 1
        xp = jnp.pad(x, ((0, 0), (reach, reach), (reach, reach), (0, 0)))
        out = jnp.zeros((n, h * s, w * s, self.features), x.dtype)
        for r1 in range(s):
            for r2 in range(s):
                pairs = [(j1, o1, j2, o2) for j1, o1 in taps[0][r1] for j2, o2 in taps[1][r2]]
                if not pairs:
                    continue
                patches = jnp.stack(
                    [
                        xp[:, reach + o1 : reach + o1 + h, reach + o2 : reach + o2 + w]
                        for _, o1, _, o2 in pairs
                    ],
                    axis=3,
                )  # (N, H, W, taps, C)
                weights = jnp.stack([kernel[j1, j2] for j1, _, j2, _ in pairs])  # (taps, C, F)
                phase = patches.reshape((n, h, w, -1)) @ weights.reshape((-1, self.features))
                out = out.at[:, r1::s, r2::s].set(phase)
        return out + bias


# The convolutions the conv modules use (module names kept, so that a benchmark can swap in
# XLA's ``nn.Conv`` / ``nn.ConvTranspose``: ``experiments/bench_conv2d.py``).
Conv2D = UnfoldConv2D
ConvTranspose2D = UnfoldConvTranspose2D


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
            h = act(Conv2D(c, _KERNEL, strides=2, name=f"conv_{i}")(h))
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
            h = act(ConvTranspose2D(c, _KERNEL, strides=2, name=f"deconv_{i}")(h))
        h = ConvTranspose2D(colours, _KERNEL, strides=2, name="image")(h)
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
            h = act(Conv2D(c, _KERNEL, strides=2, name=f"conv_{i}")(h))
        features = h.reshape((h.shape[0], -1))
        logits = nn.Dense(1, name="logit")(features)[..., 0].reshape(lead)
        return (logits, features.reshape((*lead, -1))) if return_features else logits


class ConvClassifier(nn.Module):
    """``(..., H*W*C) -> (logits (..., classes), features (..., channels[-1]))``: 3x3
    convolutions ``channels`` (stride 2 where ``strides`` says), each followed by layer
    normalisation (stateless, unlike batch normalisation) and ReLU, then the feature map's
    mean over positions and a linear layer to the logits. The transformation classifier of
    the ``geom`` detector."""

    image_shape: tuple[int, int, int]
    channels: Sequence[int]
    strides: Sequence[int]
    classes: int

    @nn.compact
    def __call__(self, x: jax.Array):
        h, lead = _to_images(x, self.image_shape)
        h = 2.0 * h - 1.0  # [0, 1] pixels centred
        for i, (c, s) in enumerate(zip(self.channels, self.strides, strict=True)):
            h = Conv2D(c, (3, 3), strides=s, name=f"conv_{i}")(h)
            h = nn.relu(nn.LayerNorm(name=f"norm_{i}")(h))
        features = h.mean(axis=(1, 2))
        logits = nn.Dense(self.classes, name="logits")(features)
        return logits.reshape((*lead, self.classes)), features.reshape((*lead, features.shape[-1]))


def _space_to_depth(x: jax.Array, block: int) -> jax.Array:
    """(N, H, W, C) -> (N, H/b, W/b, b*b*C): each b x b block of pixels as channels."""
    n, h, w, c = x.shape
    x = x.reshape((n, h // block, block, w // block, block, c)).transpose((0, 1, 3, 2, 4, 5))
    return x.reshape((n, h // block, w // block, block * block * c))


def _depth_to_space(x: jax.Array, block: int) -> jax.Array:
    """The inverse of ``_space_to_depth`` for one output channel: (N, h, w, b*b) -> (N, h*b, w*b)."""
    n, h, w, _ = x.shape
    x = x.reshape((n, h, w, block, block)).transpose((0, 1, 3, 2, 4))
    return x.reshape((n, h * block, w * block))


class SegmentationNet(nn.Module):
    """``(..., H*W) -> logits (..., H*W)``: a per-pixel classifier of square grey images, a
    small U-Net. Each ``pack`` x ``pack`` block of pixels enters as channels (space to depth:
    the network runs at 1/pack of the side, its logits are unpacked to every pixel); then two
    3x3 convolutions per level, ``channels[0]`` at that side and each further level at half the
    side before (stride 2); on the way up, each level's map joins the bilinearly upsampled
    coarser one. The discriminative network of the ``defects`` detector.

    With ``return_features=True`` it returns ``(logits, levels)``: ``levels`` the list of each
    level's output on the way down (``(B, side / pack / 2**i, side / pack / 2**i, channels[i])``),
    as the discriminators return their features."""

    image_shape: tuple[int, int, int]
    channels: Sequence[int]
    pack: int = 1

    @nn.compact
    def __call__(self, x: jax.Array, return_features: bool = False):
        h, lead = _to_images(x, self.image_shape)
        h = _space_to_depth(2.0 * h - 1.0, self.pack)
        skips = []
        for i, c in enumerate(self.channels):
            h = nn.relu(Conv2D(c, (3, 3), strides=1 if i == 0 else 2, name=f"down_{i}a")(h))
            h = nn.relu(Conv2D(c, (3, 3), name=f"down_{i}b")(h))
            skips.append(h)
        for i in range(len(self.channels) - 2, -1, -1):
            skip = skips[i]
            up = jax.image.resize(h, (*skip.shape[:3], h.shape[-1]), "bilinear")
            h = nn.relu(Conv2D(self.channels[i], (3, 3), name=f"up_{i}")(jnp.concatenate([skip, up], -1)))
        logits = _depth_to_space(Conv2D(self.pack**2, (1, 1), name="logits")(h), self.pack)
        logits = logits.reshape((*lead, -1))
        return (logits, skips) if return_features else logits


ARCHS = ("dense", "conv")


def check_arch(arch: str, channels: Sequence[int], allowed: Sequence[str] = ARCHS) -> None:
    """Validates an ``arch`` name (one of ``allowed``) and its conv ``channels`` (used by the
    detector configs)."""
    if arch not in allowed:
        raise ValueError(f"unknown arch '{arch}'; expected one of {tuple(allowed)}")
    if arch in ("conv", "conv1d") and (not channels or any(c < 1 for c in channels)):
        raise ValueError(f"arch '{arch}' needs channels >= 1, got {tuple(channels)}")
