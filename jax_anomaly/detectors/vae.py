"""Variational autoencoder detector: a Gaussian encoder q(z|x) with the reparameterisation
trick, a Bernoulli or Gaussian decoder p(x|z), trained on the β-weighted ELBO; scored by
reconstruction error, negative ELBO, or An & Cho's (2015) reconstruction probability."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors.base import Detector, Phase, adam, per_sample_normal, register
from jax_anomaly.image_scores import (
    IMAGE_SCORES,
    STANDARDISED_IMAGE_SCORES,
    image_score,
    split_scale,
    square_side,
)
from jax_anomaly.models import check_autoencoder_config, encoder_decoder
from jax_anomaly.training import masked_mean

LIKELIHOODS = ("bernoulli", "gaussian")
# Its own scores, then the image scores of the decoder mean at mu(x) ("recon" is their "mse").
SCORES = ("recon_prob", "elbo", "recon", *IMAGE_SCORES[1:], *STANDARDISED_IMAGE_SCORES)
_OWN = SCORES[:3]
# Floor of the Gaussian decoder's log-variance: pixels that are exactly 0 in every normal
# image would otherwise drive the variance to 0 and the likelihood to infinity.
_MIN_LOGVAR = -6.0
_LOG_2PI = math.log(2.0 * math.pi)
_MAX_LOGVAR = 20.0  # |log-variance| bound of the encoder (see make_parts)


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """VAE sizes, objective and score.

    Attributes:
      hidden: dense layers of the encoder (mirrored in the decoder), ``arch='dense'``.
      latent: size of z; with 2 the latent plot is the latent space itself.
      arch: ``'dense'`` or ``'conv'`` (square images; ``channels`` stride-2 levels).
      channels: conv channels per level, ``arch='conv'``.
      activation: hidden activation; None: ReLU (dense) or LeakyReLU (conv), see
        ``models.hidden_activation``.
      likelihood: decoder p(x|z): ``'bernoulli'`` (logits; data in [0, 1]) or ``'gaussian'``
        (per-feature mean in (0, 1) and log-variance, floored at -6).
      beta: weight of the KL term (β-VAE); 1 is the ELBO.
      score: ``'recon_prob'`` (default): -log of the reconstruction probability
        (1/L) Σ_l p(x | z_l), z_l ~ q(z|x) (An & Cho 2015); ``'elbo'``: the negative ELBO
        (β = 1) with L samples; ``'recon'``: squared error of the decoder mean at z = μ(x);
        or an image score of that mean (mean3, mean5, gauss3, gauss5, pyramid, ssim, peak3, or
        one of them standardised: mse_std, mean3_std, ...; jax_anomaly.image_scores). The
        first three are returned by ``score`` whichever is chosen.
      mc_samples: L, Monte-Carlo samples per test sample.
      score_batch: samples per vmapped scoring chunk.
    """

    hidden: tuple[int, ...] = (512, 256)
    latent: int = 16
    arch: str = "dense"
    channels: tuple[int, ...] = (32, 64)
    activation: str | None = None
    likelihood: str = "bernoulli"
    beta: float = 1.0
    score: str = "recon_prob"
    mc_samples: int = 10
    score_batch: int = 4096

    def __post_init__(self):
        check_autoencoder_config(self)
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood '{self.likelihood}'; expected one of {LIKELIHOODS}")
        if not self.beta >= 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")
        if self.score not in SCORES:
            raise ValueError(f"unknown VAE score '{self.score}'; expected one of {SCORES}")
        if self.mc_samples < 1 or self.score_batch < 1:
            raise ValueError(
                f"mc_samples and score_batch must be >= 1, got {self.mc_samples}, {self.score_batch}"
            )


PRESETS = {
    "mnist": VAEConfig(),
    "mnist_conv": VAEConfig(arch="conv", latent=16),
    "digits": VAEConfig(hidden=(64,), latent=4),
    # MinMax-scaled tabular data: a Gaussian decoder.
    "synthetic": VAEConfig(hidden=(16,), latent=4, likelihood="gaussian"),
    "tiny": VAEConfig(hidden=(16,), latent=2, likelihood="gaussian", mc_samples=4),
}


def build_models(cfg: VAEConfig, n_features: int):
    """``(encoder (..., D) -> (..., 2*latent), decoder (..., latent) -> (..., D, k))``, k = 1
    (Bernoulli logits) or 2 (Gaussian mean, raw log-variance)."""
    return encoder_decoder(
        cfg.arch,
        n_features,
        encoder_out=2 * cfg.latent,
        hidden=cfg.hidden,
        channels=cfg.channels,
        activation=cfg.activation,
        output_activation="linear",
        outputs_per_feature=1 if cfg.likelihood == "bernoulli" else 2,
    )


def init_state(cfg: VAEConfig, train: TrainConfig, n_features: int, key: jax.Array):
    """A ``TrainState`` over ``{'encoder', 'decoder'}`` parameters with Adam."""
    encoder, decoder = build_models(cfg, n_features)
    e_key, d_key = jax.random.split(key)
    params = {
        "encoder": encoder.init(e_key, jnp.zeros((1, n_features)))["params"],
        "decoder": decoder.init(d_key, jnp.zeros((1, cfg.latent)))["params"],
    }
    return train_state.TrainState.create(apply_fn=None, params=params, tx=adam(train))


def make_parts(cfg: VAEConfig, n_features: int):
    """The model's pure functions, for one sample or a batch (leading axes ``...``):

    - ``encode(params, x) -> (mu, logvar)``, each ``(..., latent)``;
    - ``decode(params, z) -> (mean (..., D), log p(x|z) as a function of x)``;
    - ``kl(mu, logvar) -> (...)``: KL(q(z|x) || N(0, I)).
    """
    encoder, decoder = build_models(cfg, n_features)

    def encode(params, x):
        h = encoder.apply({"params": params["encoder"]}, x)
        # exp(logvar) must stay finite on inputs far outside [0, 1] (scikit-learn's checks
        # fit data around 100); the clip never binds on data in range, so it changes nothing there.
        return h[..., : cfg.latent], jnp.clip(h[..., cfg.latent :], -_MAX_LOGVAR, _MAX_LOGVAR)

    def decode(params, z):
        out = decoder.apply({"params": params["decoder"]}, z)
        if cfg.likelihood == "bernoulli":
            logits = out

            def log_lik(x):
                return -jnp.sum(optax.sigmoid_binary_cross_entropy(logits, x), axis=-1)

            return jax.nn.sigmoid(logits), log_lik
        out = out.reshape((*out.shape[:-1], n_features, 2))
        mean = jax.nn.sigmoid(out[..., 0])  # the data are in [0, 1]
        logvar = _MIN_LOGVAR + jax.nn.softplus(out[..., 1] - _MIN_LOGVAR)

        def log_lik(x):
            return -0.5 * jnp.sum(jnp.square(x - mean) * jnp.exp(-logvar) + logvar + _LOG_2PI, axis=-1)

        return mean, log_lik

    def kl(mu, logvar):
        return 0.5 * jnp.sum(jnp.square(mu) + jnp.exp(logvar) - 1.0 - logvar, axis=-1)

    return encode, decode, kl


def make_step(cfg: VAEConfig, train: TrainConfig, n_features: int):
    """``step(state, batch, mask, key) -> (state, metrics)``: one reparameterised sample per
    row, loss = mean over rows of ``-log p(x|z) + β·KL``; metrics split it into its parts."""
    encode, decode, kl = make_parts(cfg, n_features)

    def step(state, batch, mask, key):
        def loss_fn(params):
            mu, logvar = encode(params, batch)
            z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape)
            _, log_lik = decode(params, z)
            nll, kls = -log_lik(batch), kl(mu, logvar)
            return masked_mean(nll + cfg.beta * kls, mask), (masked_mean(nll, mask), masked_mean(kls, mask))

        (loss, (nll, kls)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        return state.apply_gradients(grads=grads), {"loss": loss, "recon_nll": nll, "kl": kls}

    return step


def make_eval(cfg: VAEConfig, n_features: int):
    """``(state, x) -> {'loss'}``: the objective with z = μ(x) (deterministic, for early stopping)."""
    encode, decode, kl = make_parts(cfg, n_features)

    def eval_fn(state, x):
        mu, logvar = encode(state.params, x)
        _, log_lik = decode(state.params, mu)
        return {"loss": jnp.mean(-log_lik(x) + cfg.beta * kl(mu, logvar))}

    return eval_fn


def make_sample_scorer(cfg: VAEConfig, n_features: int):
    """``one(params, x, eps) -> dict`` for one sample ``x`` (D,) with its L Monte-Carlo
    draws ``eps`` (L, latent): ``score`` (the config's choice), ``recon_error``,
    ``neg_elbo``, ``neg_log_recon_prob``, ``z`` = μ(x) and ``reconstruction``, the decoder
    mean at μ(x)."""
    encode, decode, kl = make_parts(cfg, n_features)

    def one(params, x, eps):
        params, scale = split_scale(params)
        mu, logvar = encode(params, x)
        z = mu + jnp.exp(0.5 * logvar) * eps  # (L, latent)
        _, log_lik = decode(params, z)
        log_liks = log_lik(x)  # (L,)
        mean, _ = decode(params, mu)
        recon = jnp.mean(jnp.square(mean - x))
        image, amap = (
            (recon, jnp.square(mean - x))
            if cfg.score in _OWN
            else image_score(cfg.score, x, mean, square_side(n_features, cfg.score), scale)
        )
        neg_elbo = -jnp.mean(log_liks) + kl(mu, logvar)
        recon_prob = -(jax.nn.logsumexp(log_liks) - jnp.log(cfg.mc_samples))
        parts = {"recon": recon, "elbo": neg_elbo, "recon_prob": recon_prob}
        return {
            "score": parts.get(cfg.score, image),
            "map": amap,
            "recon_error": recon,
            "neg_elbo": neg_elbo,
            "neg_log_recon_prob": recon_prob,
            "z": mu,
            "reconstruction": mean,
        }

    return one


def score_inputs(cfg: VAEConfig, x, key) -> tuple:
    """The L Monte-Carlo draws (N, L, latent) per sample; each sample's from ``key`` folded
    with a hash of the sample (``sample_keys``), so a score does not depend on the batch."""
    shape = (cfg.mc_samples, cfg.latent)
    return (per_sample_normal(key, x, shape),)


DETECTOR = register(
    Detector(
        name="vae",
        description="variational autoencoder (β-ELBO), reconstruction-probability score",
        config_cls=VAEConfig,
        presets=PRESETS,
        phases=(Phase("train", init_state, make_step, make_eval),),
        make_sample_scorer=make_sample_scorer,
        score_inputs=score_inputs,
        dataset_presets={"mnist": "mnist", "fashion_mnist": "mnist", "digits": "digits"},
        default_preset="synthetic",
        estimator="VAE",
    )
)
