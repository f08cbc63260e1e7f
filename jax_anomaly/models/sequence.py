"""Sequence Flax Linen modules for windows of a time series: a 1-D convolutional and a GRU
encoder/decoder. Like the dense and conv modules they take and return flat rows
``(..., L*C)`` (a window of L steps of C channels, time-major), so every detector, the
training loop and the scorers stay unchanged."""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_anomaly.models.dense import activation

SEQUENCE_ARCHS = ("conv1d", "gru")
_KERNEL = (5,)


class UnfoldConv1D(nn.Module):
    """``nn.Conv`` for 1-D inputs ``(N, L, C)`` with ``padding='SAME'``, computed as ONE matrix
    product over the unfolded windows: the K shifted (strided) slices of the padded input are
    stacked to ``(N, L_out, K*C)`` and multiplied by the kernel reshaped to ``(K*C, F)``.
    Same parameters (``kernel`` (K, C, F), ``bias`` (F,)), initialisers and outputs as
    ``nn.Conv(features, (K,), strides, padding='SAME')`` (tested equal). On CPU, XLA's
    convolution inside the training loop (whole epochs in a ``lax.scan``) made ``conv1d_ae``'s
    fit 14x slower (10 epochs on 1,200 points, window 183: 37 s against 2.7 s), although one
    layer's gradient step alone is about as fast either way (``experiments/bench_conv1d.py``).
    """

    features: int
    kernel_size: int
    strides: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n, length, c = x.shape
        k, s = self.kernel_size, self.strides
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, c, self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        out = -(-length // s)
        pad = max((out - 1) * s + k - length, 0)
        x = jnp.pad(x, ((0, 0), (pad // 2, pad - pad // 2), (0, 0)))
        windows = jnp.stack([x[:, j : j + (out - 1) * s + 1 : s] for j in range(k)], axis=2)  # (N, out, K, C)
        return windows.reshape((n, out, k * c)) @ kernel.reshape((k * c, self.features)) + bias


def sequence_shape(n_features: int, in_channels: int) -> tuple[int, int]:
    """``(L, C)`` of a flattened window.

    Raises:
      ValueError: ``n_features`` does not divide by ``in_channels``.
    """
    if in_channels < 1 or n_features % in_channels:
        raise ValueError(f"{n_features} features are not windows of {in_channels} channel(s) (in_channels)")
    return n_features // in_channels, in_channels


class Conv1DEncoder(nn.Module):
    """``(..., L*C) -> (..., out)``: stride-2 1-D convolutions ``channels``, then a linear layer."""

    length: int
    in_channels: int
    channels: Sequence[int]
    out: int
    activation: str = "leaky_relu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = activation(self.activation)
        lead = x.shape[:-1]
        h = x.reshape((-1, self.length, self.in_channels))
        for i, c in enumerate(self.channels):
            h = act(UnfoldConv1D(c, _KERNEL[0], strides=2, name=f"conv_{i}")(h))
        return nn.Dense(self.out, name="out")(h.reshape((h.shape[0], -1))).reshape((*lead, self.out))


class Conv1DDecoder(nn.Module):
    """``(..., latent) -> (..., L*C)``: a linear layer to the shortest feature map, then per
    entry of ``channels`` (widest first) a 2x nearest upsampling and a convolution, cropped to
    L steps, then a 1x1 convolution to the C output channels. (Upsampling + convolution, not a
    transposed convolution: XLA's CPU transposed 1-D convolution took 0.30 s per gradient step
    of a 128 x 183 batch, this one 0.06 s.)"""

    length: int
    out_channels: int
    channels: Sequence[int]
    activation: str = "leaky_relu"
    output_activation: str = "linear"

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        act = activation(self.activation)
        lead = z.shape[:-1]
        short = math.ceil(self.length / 2 ** len(self.channels))
        h = act(nn.Dense(short * self.channels[0], name="project")(z.reshape((-1, z.shape[-1]))))
        h = h.reshape((-1, short, self.channels[0]))
        for i, c in enumerate(self.channels):
            h = act(UnfoldConv1D(c, _KERNEL[0], name=f"upconv_{i}")(jnp.repeat(h, 2, axis=1)))
        h = nn.Conv(self.out_channels, (1,), name="out")(h[:, : self.length])
        return activation(self.output_activation)(h).reshape((*lead, self.length * self.out_channels))


class GRUEncoder(nn.Module):
    """``(..., L*C) -> (..., out)``: a GRU over the L steps, its last state through a linear layer."""

    length: int
    in_channels: int
    units: int
    out: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        lead = x.shape[:-1]
        h = x.reshape((-1, self.length, self.in_channels))
        carry, _ = nn.RNN(nn.GRUCell(self.units), return_carry=True, name="gru")(h)
        return nn.Dense(self.out, name="out")(carry).reshape((*lead, self.out))


class GRUDecoder(nn.Module):
    """``(..., latent) -> (..., L*C)``: the latent code starts a GRU that is fed the code at
    every one of the L steps; a linear layer maps each step's state to the C outputs."""

    length: int
    out_channels: int
    units: int
    output_activation: str = "linear"

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        lead = z.shape[:-1]
        z = z.reshape((-1, z.shape[-1]))
        carry = jnp.tanh(nn.Dense(self.units, name="init")(z))
        steps = jnp.broadcast_to(z[:, None, :], (z.shape[0], self.length, z.shape[-1]))
        h = nn.RNN(nn.GRUCell(self.units), name="gru")(steps, initial_carry=carry)
        h = nn.Dense(self.out_channels, name="out")(h)
        return activation(self.output_activation)(h).reshape((*lead, self.length * self.out_channels))


def sequence_pair(
    arch: str,
    n_features: int,
    *,
    in_channels: int,
    encoder_out: int,
    hidden: Sequence[int],
    channels: Sequence[int],
    activation: str,
    output_activation: str,
    outputs_per_feature: int = 1,
) -> tuple[nn.Module, nn.Module]:
    """The encoder/decoder pair of a sequence ``arch``: conv1d uses ``channels``; gru has
    ``hidden[0]`` units in each GRU."""
    length, c = sequence_shape(n_features, in_channels)
    out_channels = c * outputs_per_feature
    if arch == "conv1d":
        return (
            Conv1DEncoder(length, c, tuple(channels), encoder_out, activation),
            Conv1DDecoder(length, out_channels, tuple(reversed(channels)), activation, output_activation),
        )
    if not hidden:
        raise ValueError("arch 'gru' needs hidden=(units,) for its GRU state size")
    return (
        GRUEncoder(length, c, hidden[0], encoder_out),
        GRUDecoder(length, out_channels, hidden[0], output_activation),
    )
