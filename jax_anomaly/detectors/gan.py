"""The GAN that AnoGAN and f-AnoGAN share: its config, models, train state, training phase
and samples (not a detector by itself: each of the two adds its own way to score)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from flax.training import train_state

from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors.base import Fitted, Phase, adam
from jax_anomaly.models import check_arch, generator_discriminator
from jax_anomaly.training import masked_mean
from jax_anomaly.training.losses import bce

# Adam beta1 for GAN training unless the user sets one: with 0.9 the MLP discriminator of
# the MNIST preset wins outright within a few epochs and the generator collapses to noise.
GAN_B1 = 0.5


@dataclasses.dataclass(frozen=True)
class GANConfig:
    """The GAN's sizes.

    Attributes:
      latent: size of z.
      g_hidden: generator hidden layers (latent -> g_hidden -> D, ReLU, tanh output).
      d_hidden: discriminator hidden layers (D -> d_hidden -> 1, LeakyReLU(0.2), logits).
      arch: dense MLPs (g_hidden, d_hidden) or conv (the DCGAN pair with channels stride-2
        levels; square images).
      channels: DCGAN discriminator channels per level (the generator mirrors them).
    """

    latent: int = 100
    g_hidden: tuple[int, ...] = (128, 256, 512)
    d_hidden: tuple[int, ...] = (512, 256)
    arch: str = "dense"
    channels: tuple[int, ...] = (32, 64)

    def __post_init__(self):
        for name in ("g_hidden", "d_hidden", "channels"):
            object.__setattr__(self, name, tuple(int(h) for h in getattr(self, name)))
        check_arch(self.arch, self.channels)
        if self.latent < 1 or any(h < 1 for h in self.g_hidden + self.d_hidden) or not self.d_hidden:
            raise ValueError(
                f"layer sizes must be >= 1 and d_hidden non-empty: latent {self.latent}, "
                f"g_hidden {self.g_hidden}, d_hidden {self.d_hidden}"
            )


def gan_fields(cfg) -> dict:
    """The ``GANConfig`` fields of any GAN detector's config (to carry a GAN across them)."""
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(GANConfig)}


@dataclasses.dataclass(frozen=True)
class GANModels:
    generator: Any  # flax modules (models/), applied with their own parameter trees
    discriminator: Any


def build_models(cfg: GANConfig, n_features: int) -> GANModels:
    return GANModels(
        *generator_discriminator(
            cfg.arch, n_features, g_hidden=cfg.g_hidden, d_hidden=cfg.d_hidden, channels=cfg.channels
        )
    )


class GANState(struct.PyTreeNode):
    """Generator and discriminator train states, updated together in one step."""

    generator: train_state.TrainState
    discriminator: train_state.TrainState


def init_state(cfg: GANConfig, train: TrainConfig, n_features: int, key: jax.Array) -> GANState:
    models = build_models(cfg, n_features)
    g_key, d_key = jax.random.split(key)
    g_params = models.generator.init(g_key, jnp.zeros((1, cfg.latent)))["params"]
    d_params = models.discriminator.init(d_key, jnp.zeros((1, n_features)))["params"]
    return GANState(
        generator=train_state.TrainState.create(
            apply_fn=models.generator.apply, params=g_params, tx=adam(train, GAN_B1)
        ),
        discriminator=train_state.TrainState.create(
            apply_fn=models.discriminator.apply, params=d_params, tx=adam(train, GAN_B1)
        ),
    )


def make_step(cfg: GANConfig, train: TrainConfig, n_features: int):
    """``step(state, batch, mask, key) -> (state, metrics)``: one discriminator update
    (real -> 1, G(z) -> 0), then one non-saturating generator update against the updated D."""

    def step(state: GANState, batch, mask, key):
        g, d = state.generator, state.discriminator
        z = jax.random.normal(key, (batch.shape[0], cfg.latent))
        # G(z) is computed once: the D update uses it as data, and the G update pulls the
        # gradient of its loss w.r.t. G(z) back through this same forward pass.
        fake, g_vjp = jax.vjp(lambda g_params: g.apply_fn({"params": g_params}, z), g.params)

        def d_loss_fn(d_params):
            real_logits = d.apply_fn({"params": d_params}, batch)
            fake_logits = d.apply_fn({"params": d_params}, fake)
            loss = masked_mean(bce(real_logits, 1.0) + bce(fake_logits, 0.0), mask)
            return loss, (real_logits, fake_logits)

        (d_loss, (real_logits, fake_logits)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d.params)
        d = d.apply_gradients(grads=d_grads)

        def g_loss_fn(fake):  # non-saturating generator loss against the updated D
            return masked_mean(bce(d.apply_fn({"params": d.params}, fake), 1.0), mask)

        g_loss, d_fake = jax.value_and_grad(g_loss_fn)(fake)
        (g_grads,) = g_vjp(d_fake)
        metrics = {
            "d_loss": d_loss,
            "g_loss": g_loss,
            "d_real": masked_mean(jax.nn.sigmoid(real_logits), mask),
            "d_fake": masked_mean(jax.nn.sigmoid(fake_logits), mask),
        }
        return GANState(generator=g.apply_gradients(grads=g_grads), discriminator=d), metrics

    return step


def gan_params(state: GANState) -> dict:
    """``{'generator', 'discriminator'}`` parameters of a GAN state."""
    return {"generator": state.generator.params, "discriminator": state.discriminator.params}


# The GAN's training phase (no validation loss: a GAN cannot early-stop on one).
PHASE = Phase("gan", init_state, make_step, params_of=gan_params)


def generate(fitted: Fitted, n: int, *, key) -> np.ndarray:
    """``n`` samples G(z), z ~ N(0, I), in the generator's range [-1, 1]."""
    gen = build_models(fitted.config, fitted.n_features).generator
    z = jax.random.normal(key, (n, fitted.config.latent))
    return np.asarray(gen.apply({"params": fitted.params["generator"]}, z))


def plot_samples(fitted: Fitted, plots_dir, image_shape, *, key) -> None:
    """A grid of 64 generated samples, mapped to [0, 1] (images only)."""
    if image_shape is None:
        return
    from jax_anomaly import plotting

    samples = (generate(fitted, 64, key=key) + 1.0) / 2.0
    plotting.plot_grid(plots_dir / "generated.png", samples, image_shape, title="G(z), z ~ N(0, I)")
