"""Anomaly scores of an image against its reconstruction, beyond pixel MSE (pure jax.numpy,
written for one sample; the detectors' sample scorers call them on the device).

Each score aggregates a per-pixel map, returned with it (the anomaly map); all but ``peak3``
are the map's mean:

- ``mse``: the squared residual (x - r)^2, pixel by pixel.
- ``mean3``, ``mean5``: the residual averaged over a 3x3 / 5x5 window, then squared: a
  coherent missing stroke adds up, one stray bright pixel is diluted.
- ``gauss3``, ``gauss5``: the same with a Gaussian window (sigma = size / 4).
- ``pyramid``: the squared residual at full, half and quarter resolution (2x2 averages),
  each level's map upsampled back and the levels averaged.
- ``ssim``: 1 - SSIM(x, r) per pixel (local means, variances and covariance over a 3x3
  Gaussian window; constants for data in [0, 1]).
- ``peak3``: the ``mean3`` map, scored by the mean of its highest ``PEAK_FRACTION`` (10 %) of
  pixels: an anomaly confined to one region is not averaged away by the rest of the image
  (the maximum of the anomaly map is the usual image score of defect detectors; a top
  fraction is its less noisy form).

Each has a standardised variant, ``<name>_std`` (``loss_std`` too): its map divided pixel by
pixel by ``pixel_scale`` of the held-out normal maps, ``(rms + mean(rms))^2`` with ``rms``
the root mean map of each pixel, so pixels that normal images rarely reconstruct well (stroke
edges) weigh less and pixels they always reconstruct (the empty border) weigh more, bounded
by the mean. Fitting computes the scale after training and keeps it in the model's
parameters under ``PIXEL_SCALE`` (``split_scale``), so the scorer, saved models and exported
scorers apply it on the device.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jax_anomaly.training.losses import per_feature_loss

IMAGE_SCORES = ("mse", "mean3", "mean5", "gauss3", "gauss5", "pyramid", "ssim", "peak3")
# ``peak3`` scores the mean of this fraction of its map's pixels, the highest (picked on
# MNIST's one-class table among 2, 5, 10 and 25 %; docs/results.md).
PEAK_FRACTION = 0.1
STD = "_std"  # the suffix of a standardised score
STANDARDISED_IMAGE_SCORES = tuple(name + STD for name in IMAGE_SCORES)
# A GAN detector's ``score``: its own loss (the default), or an image score for its residual.
GAN_SCORES = ("loss", *IMAGE_SCORES, *STANDARDISED_IMAGE_SCORES)
# An autoencoder's ``score``: its training loss per sample (the default), an image score, or
# either standardised.
RECONSTRUCTION_SCORES = ("loss", *IMAGE_SCORES, "loss" + STD, *STANDARDISED_IMAGE_SCORES)
# The key of the fitted per-pixel scale of a standardised score in a model's parameters.
PIXEL_SCALE = "pixel_scale"


def check_score(score: str, allowed: tuple[str, ...] = RECONSTRUCTION_SCORES) -> None:
    if score not in allowed:
        raise ValueError(f"unknown score '{score}'; expected one of {allowed}")


def is_standardised(score: str) -> bool:
    return score.endswith(STD)


def unstandardised(score: str) -> str:
    """The score whose map a standardised score divides (``'mean3_std'`` -> ``'mean3'``)."""
    return score[: -len(STD)] if is_standardised(score) else score


def split_scale(params):
    """``(params, scale)``: a model's parameters without its ``PIXEL_SCALE`` entry, and that
    entry (None where the model has none: not standardised, or not yet calibrated)."""
    if isinstance(params, Mapping) and PIXEL_SCALE in params:
        return {k: v for k, v in params.items() if k != PIXEL_SCALE}, params[PIXEL_SCALE]
    return params, None


def pixel_scale(maps) -> np.ndarray:
    """The per-pixel divisor of a standardised score from the maps of held-out normal samples
    (N, D) (or (K, N, D): one scale per model): ``(rms + mean(rms))^2``, float32."""
    maps = np.asarray(maps, np.float64)
    if maps.ndim < 2 or maps.shape[-2] == 0:
        raise ValueError(f"pixel_scale needs maps of at least one sample (N, D), got shape {maps.shape}")
    rms = np.sqrt(np.maximum(maps.mean(axis=-2), 0.0))
    scale = np.square(rms + rms.mean(axis=-1, keepdims=True))
    return np.maximum(scale, np.finfo(np.float32).tiny).astype(np.float32)


def aggregate(name: str, amap: jax.Array) -> jax.Array:
    """The score of one sample's map (D,) under score ``name``: the map's mean, or for
    ``peak3`` (and ``peak3_std``) the mean of its highest ``PEAK_FRACTION`` of pixels."""
    if unstandardised(name) == "peak3":
        k = max(1, math.ceil(PEAK_FRACTION * amap.shape[-1]))
        return jnp.mean(jax.lax.top_k(amap, k)[0], axis=-1)
    return jnp.mean(amap, axis=-1)


def _scaled(name: str, amap: jax.Array, scale) -> tuple[jax.Array, jax.Array]:
    amap = amap if scale is None else amap / scale
    return aggregate(name, amap), amap


def reconstruction_score(
    score: str, loss: str, x: jax.Array, recon: jax.Array, scale=None
) -> tuple[jax.Array, ...]:
    """``(score, map)`` of one sample (D,): ``'loss'`` is the mean per-feature training loss
    (map: that loss per feature), any other name an image score (``image_score``); a
    standardised score divides the map by ``scale`` (D,) (None: the map undivided)."""
    if unstandardised(score) == "loss":
        return _scaled(score, per_feature_loss(recon, x, loss), scale)
    return image_score(score, x, recon, square_side(x.shape[-1], score), scale)


def square_side(n_features: int, score: str) -> int:
    """The side of the square single-channel image of ``n_features`` pixels.

    Raises:
      ValueError: the features are not a square image (image scores need one).
    """
    side = int(round(math.sqrt(n_features)))
    if side * side != n_features:
        raise ValueError(f"score '{score}' needs square single-channel images; got {n_features} features")
    return side


def _window(kind: str, size: int) -> jax.Array:
    if kind == "mean":
        w = jnp.ones(size)
    else:
        sigma = size / 4.0
        t = jnp.arange(size) - (size - 1) / 2.0
        w = jnp.exp(-0.5 * (t / sigma) ** 2)
    w = w / w.sum()
    return jnp.outer(w, w)


def _filter(img: jax.Array, window: jax.Array) -> jax.Array:
    """``img`` (H, W) convolved with ``window`` (k, k), zero padding ('same' size)."""
    out = jax.lax.conv_general_dilated(img[None, None], window[None, None], (1, 1), "SAME")
    return out[0, 0]


def _upsample(img: jax.Array, factor: int) -> jax.Array:
    return jnp.repeat(jnp.repeat(img, factor, axis=0), factor, axis=1)


def _pool(img: jax.Array) -> jax.Array:
    h, w = img.shape
    return img[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def image_score(
    name: str, x: jax.Array, recon: jax.Array, side: int, scale=None
) -> tuple[jax.Array, jax.Array]:
    """``(score, map)`` of one sample: ``x`` and ``recon`` (D,) with D = side**2; ``map`` (D,)
    is the per-pixel anomaly map (divided by ``scale`` (D,) when given: a standardised score)
    and ``score`` its ``aggregate``."""
    return _scaled(name, _image_map(unstandardised(name), x, recon, side), scale)


def _image_map(name: str, x: jax.Array, recon: jax.Array, side: int) -> jax.Array:
    img, rec = x.reshape(side, side), recon.reshape(side, side)
    residual = img - rec
    if name == "mse":
        amap = jnp.square(residual)
    elif name in ("mean3", "mean5", "gauss3", "gauss5", "peak3"):
        kind = "mean" if name == "peak3" else name[:-1]
        amap = jnp.square(_filter(residual, _window(kind, int(name[-1]))))
    elif name == "pyramid":
        levels, level = [], residual
        for factor in (1, 2, 4):
            if level.shape[0] < 1:
                break
            up = _upsample(jnp.square(level), factor)
            levels.append(jnp.pad(up, ((0, side - up.shape[0]), (0, side - up.shape[1]))))
            level = _pool(level)
        amap = jnp.mean(jnp.stack(levels), axis=0)
    elif name == "ssim":
        w = _window("gauss", 3)
        mx, mr = _filter(img, w), _filter(rec, w)
        vx = _filter(img * img, w) - mx * mx
        vr = _filter(rec * rec, w) - mr * mr
        cov = _filter(img * rec, w) - mx * mr
        c1, c2 = 0.01**2, 0.03**2
        ssim = ((2 * mx * mr + c1) * (2 * cov + c2)) / ((mx * mx + mr * mr + c1) * (vx + vr + c2))
        amap = 1.0 - ssim
    else:
        raise ValueError(f"unknown image score '{name}'; expected one of {IMAGE_SCORES}")
    return amap.reshape(-1)


def symmetric_image_score(
    name: str, x: jax.Array, recon: jax.Array, scale=None
) -> tuple[jax.Array, jax.Array]:
    """``image_score`` of images in [-1, 1] (the GAN detectors' input range): computed on
    the [0, 1] images and multiplied by 4, so ``mse`` equals the mean squared residual in
    [-1, 1] that the GAN detectors' default scores use (then divided by ``scale``)."""
    side = square_side(x.shape[-1], name)
    amap = _image_map(unstandardised(name), (x + 1.0) / 2.0, (recon + 1.0) / 2.0, side)
    return _scaled(name, 4.0 * amap, scale)
