"""Adversarial autoencoder detector (Makhzani et al. 2015): an autoencoder whose latent codes
a discriminator tries to tell from samples of the N(0, I) prior; the encoder learns to fool
it, so the codes of normal data follow the prior. Score: reconstruction error, optionally
plus the codes' negative log prior density."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors.base import Detector, Phase, adam, register
from jax_anomaly.detectors.gan import GAN_B1
from jax_anomaly.image_scores import check_score, reconstruction_score, split_scale
from jax_anomaly.models import Discriminator, autoencoder_pair, check_autoencoder_config
from jax_anomaly.training import masked_mean
from jax_anomaly.training.losses import RECONSTRUCTION_LOSSES, bce, per_sample_loss


@dataclasses.dataclass(frozen=True)
class AAEConfig:
    """Adversarial autoencoder sizes and score.

    Attributes:
      hidden: hidden layer sizes of the dense encoder (mirrored in the decoder).
      latent: latent size (the prior N(0, I) lives here).
      arch: dense MLPs or conv (convolutional networks; square grey or RGB images).
      channels: conv channels per stride-2 level.
      activation: hidden activation (None: ReLU dense, LeakyReLU conv).
      output_activation: sigmoid (data in [0, 1]) or linear.
      loss: mse or bce: the reconstruction loss (and, with score loss, the score's error part).
      score: the score's error part: loss (default) or an image score (mse, mean3, mean5,
        gauss3, gauss5, pyramid, ssim, peak3; square images; jax_anomaly.image_scores), either
        with a ``_std`` suffix: standardised by a per-pixel scale of the held-out normals.
      d_hidden: the latent discriminator's hidden layers (``latent -> d_hidden -> 1``).
      prior_weight: score = reconstruction error + ``prior_weight`` · (-log N(z; 0, I)) / latent
        of the code z = E(x); 0 scores by reconstruction alone.
      score_batch: samples per vmapped scoring chunk.
    """

    hidden: tuple[int, ...] = (512, 256)
    latent: int = 8
    arch: str = "dense"
    channels: tuple[int, ...] = (32, 64)
    activation: str | None = None
    output_activation: str = "sigmoid"
    loss: str = "mse"
    score: str = "loss"
    d_hidden: tuple[int, ...] = (128, 128)
    prior_weight: float = 0.0
    score_batch: int = 4096

    def __post_init__(self):
        check_autoencoder_config(self, ("hidden", "channels", "d_hidden"))
        check_score(self.score)
        if not self.d_hidden or any(h < 1 for h in self.d_hidden):
            raise ValueError(f"d_hidden must be non-empty with sizes >= 1, got {self.d_hidden}")
        if self.loss not in RECONSTRUCTION_LOSSES:
            raise ValueError(f"unknown loss '{self.loss}'; expected one of {RECONSTRUCTION_LOSSES}")
        if not self.prior_weight >= 0:
            raise ValueError(f"prior_weight must be >= 0, got {self.prior_weight}")
        if self.score_batch < 1:
            raise ValueError(f"score_batch must be >= 1, got {self.score_batch}")


PRESETS = {
    "mnist": AAEConfig(),
    "mnist_conv": AAEConfig(arch="conv", latent=16),
    "digits": AAEConfig(hidden=(64,), latent=4, d_hidden=(32, 32)),
    "synthetic": AAEConfig(hidden=(16,), latent=4, output_activation="linear", d_hidden=(16, 16)),
    "tiny": AAEConfig(hidden=(16,), latent=2, d_hidden=(8,)),
}


def build_models(cfg: AAEConfig, n_features: int):
    """``(encoder, decoder, latent discriminator)``."""
    return (*autoencoder_pair(cfg, n_features), Discriminator(cfg.d_hidden))


class AAEState(struct.PyTreeNode):
    """All parameters and the three phases' optimiser states.

    ``params``: ``{'encoder', 'decoder', 'discriminator', 'input'}``; ``recon_opt`` updates
    encoder and decoder, ``disc_opt`` the discriminator, ``gen_opt`` the encoder as the
    generator. ``params['input']`` (``mean``, ``scale`` (D,)) standardises the encoder's input
    with the training data's statistics and is never trained: on MinMax-scaled data (feature
    std ~0.1, not centred) the adversarial phase alone left the codes' std at ~0.1-0.2 against
    the prior's 1 (the encoder moved the cluster instead of spreading it); standardised, 1.0.
    """

    step: jax.Array
    params: dict
    recon_opt: optax.OptState
    disc_opt: optax.OptState
    gen_opt: optax.OptState


def _optimisers(train: TrainConfig):
    # Reconstruction: the autoencoder's Adam; the two adversarial phases: the GANs' beta1.
    return adam(train), adam(train, GAN_B1), adam(train, GAN_B1)


def init_state(cfg: AAEConfig, train: TrainConfig, n_features: int, key: jax.Array) -> AAEState:
    encoder, decoder, disc = build_models(cfg, n_features)
    e_key, d_key, c_key = jax.random.split(key, 3)
    params = {
        "encoder": encoder.init(e_key, jnp.zeros((1, n_features)))["params"],
        "decoder": decoder.init(d_key, jnp.zeros((1, cfg.latent)))["params"],
        "discriminator": disc.init(c_key, jnp.zeros((1, cfg.latent)))["params"],
        "input": {"mean": jnp.zeros(n_features), "scale": jnp.ones(n_features)},
    }
    recon_tx, disc_tx, gen_tx = _optimisers(train)
    return AAEState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        recon_opt=recon_tx.init({"encoder": params["encoder"], "decoder": params["decoder"]}),
        disc_opt=disc_tx.init(params["discriminator"]),
        gen_opt=gen_tx.init(params["encoder"]),
    )


def make_step(cfg: AAEConfig, train: TrainConfig, n_features: int):
    """``step(state, batch, mask, key) -> (state, metrics)``: the three phases of the paper
    in order, each on the parameters the previous one left:

    1. reconstruction: encoder + decoder minimise the reconstruction loss;
    2. regularisation, discriminator: prior samples z ~ N(0, I) -> 1, codes E(x) -> 0;
    3. regularisation, generator: the encoder makes D call its codes 1 (non-saturating).
    """
    encoder, decoder, disc = build_models(cfg, n_features)
    recon_tx, disc_tx, gen_tx = _optimisers(train)

    def step(state: AAEState, batch, mask, key):
        p = state.params

        def encode(enc, x):
            return encoder.apply({"params": enc}, standardise(p["input"], x))

        def discriminate(d, z):
            return disc.apply({"params": d}, z)

        def recon_loss(ae):
            recon = decoder.apply({"params": ae["decoder"]}, encode(ae["encoder"], batch))
            return masked_mean(per_sample_loss(recon, batch, cfg.loss), mask)

        ae = {"encoder": p["encoder"], "decoder": p["decoder"]}
        r_loss, grads = jax.value_and_grad(recon_loss)(ae)
        updates, recon_opt = recon_tx.update(grads, state.recon_opt, ae)
        ae = optax.apply_updates(ae, updates)

        codes = encode(ae["encoder"], batch)
        prior = jax.random.normal(key, codes.shape)

        def disc_loss(d):
            real, fake = discriminate(d, prior), discriminate(d, codes)
            return masked_mean(bce(real, 1.0) + bce(fake, 0.0), mask), (real, fake)

        (d_loss, (real, fake)), grads = jax.value_and_grad(disc_loss, has_aux=True)(p["discriminator"])
        updates, disc_opt = disc_tx.update(grads, state.disc_opt, p["discriminator"])
        d_params = optax.apply_updates(p["discriminator"], updates)

        def gen_loss(enc):
            return masked_mean(bce(discriminate(d_params, encode(enc, batch)), 1.0), mask)

        g_loss, grads = jax.value_and_grad(gen_loss)(ae["encoder"])
        updates, gen_opt = gen_tx.update(grads, state.gen_opt, ae["encoder"])
        enc = optax.apply_updates(ae["encoder"], updates)

        new = AAEState(
            step=state.step + 1,
            params={"encoder": enc, "decoder": ae["decoder"], "discriminator": d_params, "input": p["input"]},
            recon_opt=recon_opt,
            disc_opt=disc_opt,
            gen_opt=gen_opt,
        )
        metrics = {
            "loss": r_loss,
            "d_loss": d_loss,
            "g_loss": g_loss,
            "d_prior": masked_mean(jax.nn.sigmoid(real), mask),
            "d_codes": masked_mean(jax.nn.sigmoid(fake), mask),
        }
        return new, metrics

    return step


def standardise(stats: dict, x: jax.Array) -> jax.Array:
    return (x - stats["mean"]) / stats["scale"]


def with_input_stats(cfg: AAEConfig, state: AAEState, x_train: np.ndarray) -> AAEState:
    """``state`` with ``params['input']`` set from the training data: mean and
    sqrt(variance + 0.01) per feature (the 0.01 keeps constant features, e.g. image borders,
    from dividing by zero)."""
    stats = {"mean": jnp.asarray(x_train.mean(0)), "scale": jnp.asarray(np.sqrt(x_train.var(0) + 0.01))}
    return state.replace(params={**state.params, "input": stats})


def make_eval(cfg: AAEConfig, n_features: int):
    """``(state, x) -> {'loss'}``: mean reconstruction loss (for early stopping)."""
    encoder, decoder, _ = build_models(cfg, n_features)

    def eval_fn(state, x):
        z = encoder.apply({"params": state.params["encoder"]}, standardise(state.params["input"], x))
        recon = decoder.apply({"params": state.params["decoder"]}, z)
        return {"loss": jnp.mean(per_sample_loss(recon, x, cfg.loss))}

    return eval_fn


def make_sample_scorer(cfg: AAEConfig, n_features: int):
    """``one(params, x) -> dict`` for one sample: ``score``, ``recon_error``, ``prior_nll``,
    the code ``z`` and the ``reconstruction``."""
    encoder, decoder, _ = build_models(cfg, n_features)

    def one(params, x):
        params, scale = split_scale(params)
        z = encoder.apply({"params": params["encoder"]}, standardise(params["input"], x))
        recon = decoder.apply({"params": params["decoder"]}, z)
        error, amap = reconstruction_score(cfg.score, cfg.loss, x, recon, scale)
        prior_nll = 0.5 * jnp.sum(jnp.square(z)) + 0.5 * cfg.latent * math.log(2 * math.pi)
        return {
            "score": error + cfg.prior_weight * prior_nll / cfg.latent,
            "map": amap,
            "recon_error": error,
            "prior_nll": prior_nll,
            "z": z,
            "reconstruction": recon,
        }

    return one


DETECTOR = register(
    Detector(
        name="aae",
        description="adversarial autoencoder (N(0, I) latent prior), reconstruction-error score",
        config_cls=AAEConfig,
        presets=PRESETS,
        phases=(Phase("train", init_state, make_step, make_eval, prepare_state=with_input_stats),),
        make_sample_scorer=make_sample_scorer,
        dataset_presets={"mnist": "mnist", "fashion_mnist": "mnist", "digits": "digits"},
        default_preset="synthetic",
        estimator="AdversarialAutoEncoder",
    )
)
