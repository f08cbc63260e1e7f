"""GAN detector with AnoGAN scoring: train a GAN on normal data, then for each test sample
search the latent z whose G(z) best explains it; the final search loss is the score.

The search is written for one sample (a fixed-length ``lax.scan`` of optax Adam steps on
z) and mapped over the whole test set with ``lax.map(..., batch_size=k)``, which vmaps it
over chunks of k samples inside one compiled call.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jax_anomaly.detectors import gan
from jax_anomaly.detectors.base import Detector, per_sample_normal, register
from jax_anomaly.image_scores import GAN_SCORES, check_score, split_scale, symmetric_image_score
from jax_anomaly.training.losses import bce

ANOGAN_LOSSES = ("tutorial", "paper")


@dataclasses.dataclass(frozen=True)
class AnoGANConfig(gan.GANConfig):
    """The GAN (``GANConfig``) and AnoGAN's search settings.

    Attributes:
      search_steps: Adam steps of the latent search per sample.
      search_lr: Adam learning rate of the latent search.
      lam: weight λ of the discriminator part of the search loss, in [0, 1].
      loss: the search loss: tutorial: (1-λ)·MSE(G(z), x) + λ·BCE(D(G(z)), 1); paper
        (Schlegl et al. 2017): (1-λ)·L1 residual + λ·L1 distance of D's last hidden
        features of G(z) and x.
      score_batch: samples per vmapped chunk of the search; None picks one from N.
      search_schedule: ``'constant'`` step size, or ``'cosine'`` decay from ``search_lr`` to 0
        (lets a larger first step converge in fewer iterations).
      search_init: number of random initial latents per sample; the one with the lowest
        loss starts the descent (costs one forward pass each, no gradients).
      score: loss (the search loss at the found latent, default) or an image score of the
        residual G(z*) - x in its place: (1-λ)·score + λ·discrimination; mse, mean3, mean5,
        gauss3, gauss5, pyramid, ssim, peak3, or one of them standardised (``mean3_std``, ...);
        square images only (jax_anomaly.image_scores). The search itself is unchanged.
    """

    search_steps: int = 500
    search_lr: float = 1e-2
    lam: float = dataclasses.field(default=0.1, metadata={"flag": "--lambda"})
    loss: str = "tutorial"
    score_batch: int | None = None
    search_schedule: str = "constant"
    search_init: int = 1
    score: str = "loss"

    def __post_init__(self):
        super().__post_init__()
        if self.search_steps < 1:
            raise ValueError(f"search_steps must be >= 1, got {self.search_steps}")
        if not self.search_lr > 0:
            raise ValueError(f"search_lr must be > 0, got {self.search_lr}")
        if not 0.0 <= self.lam <= 1.0:
            raise ValueError(f"lambda must be in [0, 1], got {self.lam}")
        if self.loss not in ANOGAN_LOSSES:
            raise ValueError(f"unknown AnoGAN loss '{self.loss}'; expected one of {ANOGAN_LOSSES}")
        if self.score_batch is not None and self.score_batch < 1:
            raise ValueError(f"score_batch must be >= 1, got {self.score_batch}")
        if self.search_schedule not in ("constant", "cosine"):
            raise ValueError(f"search_schedule must be 'constant' or 'cosine', got '{self.search_schedule}'")
        if self.search_init < 1:
            raise ValueError(f"search_init must be >= 1, got {self.search_init}")
        check_score(self.score, GAN_SCORES)


PRESETS = {
    # The classic MNIST GAN tutorial: G 100-128-256-512-784, D 784-512-256-1.
    "mnist_tutorial": AnoGANConfig(),
    # Same GAN, a 20x cheaper search that scored higher in the benchmark's trade-off curve:
    # a cosine-decayed step from 5e-2 and the best of 16 random initial latents.
    "mnist_fast": AnoGANConfig(search_steps=25, search_lr=5e-2, search_schedule="cosine", search_init=16),
    "digits": AnoGANConfig(latent=16, g_hidden=(64, 128), d_hidden=(128, 64), search_steps=200),
    "synthetic": AnoGANConfig(latent=8, g_hidden=(32, 32), d_hidden=(32, 16), search_steps=200),
    "tiny": AnoGANConfig(latent=4, g_hidden=(16,), d_hidden=(16,), search_steps=30, search_lr=0.05),
}


def search_loss(cfg: AnoGANConfig, models: gan.GANModels, g_params, d_params, x, real_features=None):
    """``z -> (loss, (residual, discrimination, G(z)))`` for one sample ``x`` (D,)."""
    lam = cfg.lam

    def loss_fn(z):
        gz = models.generator.apply({"params": g_params}, z)
        if cfg.loss == "tutorial":
            residual = jnp.mean(jnp.square(gz - x))
            logits = models.discriminator.apply({"params": d_params}, gz)
            disc = bce(logits, 1.0)
        else:
            residual = jnp.sum(jnp.abs(gz - x))
            _, fake_features = models.discriminator.apply({"params": d_params}, gz, return_features=True)
            disc = jnp.sum(jnp.abs(real_features - fake_features))
        return (1.0 - lam) * residual + lam * disc, (residual, disc, gz)

    return loss_fn


def search_one(cfg: AnoGANConfig, models: gan.GANModels, params, x, z0) -> dict:
    """AnoGAN's latent search for one sample.

    Args:
      cfg: search settings (steps, lr, λ, loss).
      models: the generator and discriminator modules.
      params: ``{'generator': ..., 'discriminator': ...}``.
      x: one sample (D,), in [-1, 1].
      z0: initial latent (latent,), or candidates (C, latent) of which the one with the
        lowest loss starts the descent.

    Returns:
      dict of ``score`` (final loss), ``residual``, ``discrimination``, ``z`` (latent,) and
      ``reconstruction`` G(z*) (D,).
    """
    params, scale = split_scale(params)
    g_params, d_params = params["generator"], params["discriminator"]
    real_features = None
    if cfg.loss == "paper":
        _, real_features = models.discriminator.apply({"params": d_params}, x, return_features=True)
    loss_fn = search_loss(cfg, models, g_params, d_params, x, real_features)
    if z0.ndim == 2:
        z0 = z0[jnp.argmin(jax.vmap(lambda z: loss_fn(z)[0])(z0))]
    lr = cfg.search_lr
    if cfg.search_schedule == "cosine":
        lr = optax.cosine_decay_schedule(cfg.search_lr, cfg.search_steps)
    opt = optax.adam(lr)
    grad_fn = jax.grad(lambda z: loss_fn(z)[0])

    def body(carry, _):
        z, opt_state = carry
        updates, opt_state = opt.update(grad_fn(z), opt_state)
        return (optax.apply_updates(z, updates), opt_state), None

    (z, _), _ = jax.lax.scan(body, (z0, opt.init(z0)), None, length=cfg.search_steps)
    loss, (residual, disc, gz) = loss_fn(z)
    out = {"score": loss, "residual": residual, "discrimination": disc, "z": z, "reconstruction": gz}
    if cfg.score != "loss":
        residual, amap = symmetric_image_score(cfg.score, x, gz, scale)
        out |= {"score": (1.0 - cfg.lam) * residual + cfg.lam * disc, "residual": residual, "map": amap}
    return out


def auto_score_batch(n: int, cap: int | None = None) -> int:
    """Chunk size for the vmapped search: the whole set up to ``cap`` samples, else the
    largest chunk <= cap that splits n into equal chunks when one exists nearby.

    ``cap`` defaults to 512 on CPU (measured fastest on a 2-core CPU, docs/benchmarks.md) and 16384
    on accelerators, where a whole test set fits in one chunk and larger matmuls fill the chip.
    """
    cap = cap or (512 if jax.default_backend() == "cpu" else 16384)
    if n <= cap:
        return n
    chunks = -(-n // cap)
    return -(-n // chunks)


def make_sample_scorer(cfg: AnoGANConfig, n_features: int):
    """``one(params, x, z0) -> dict``: the latent search for one sample (``search_one``)."""
    models = gan.build_models(cfg, n_features)

    def one(params, x, z0):
        return search_one(cfg, models, params, x, z0)

    return one


def score_chunk(cfg: AnoGANConfig, local_n: int) -> int:
    return cfg.score_batch or auto_score_batch(local_n)


def initial_latents(cfg: AnoGANConfig, x: np.ndarray, key: jax.Array) -> tuple:
    """``(z0,)``, z0 ~ N(0, I) per sample of ``x``: ``(n, latent)``, or ``(n, search_init,
    latent)`` candidates. Each sample's draw comes from ``key`` folded with a hash of the sample's own
    values (``sample_keys``), so a score depends on the sample alone, not on its position or
    the other samples in the call (which the conformal threshold's exchangeability needs)."""
    shape = (cfg.latent,) if cfg.search_init == 1 else (cfg.search_init, cfg.latent)
    return (per_sample_normal(key, x, shape),)


DETECTOR = register(
    Detector(
        name="anogan",
        description="GAN + AnoGAN latent search (vmapped over the test set)",
        config_cls=AnoGANConfig,
        presets=PRESETS,
        phases=(gan.PHASE,),
        make_sample_scorer=make_sample_scorer,
        score_inputs=initial_latents,
        score_chunk=score_chunk,
        dataset_presets={"mnist": "mnist_tutorial", "fashion_mnist": "mnist_tutorial", "digits": "digits"},
        default_preset="synthetic",
        input_range="symmetric",
        estimator="AnoGAN",
        extra_plots=gan.plot_samples,
    )
)
