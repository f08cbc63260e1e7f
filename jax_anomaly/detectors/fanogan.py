"""f-AnoGAN detector (Schlegl et al. 2019): train the GAN as AnoGAN does, then train an
encoder E with G and D frozen (the paper's izi_f training) so that a test sample's latent is
E(x), one forward pass, instead of AnoGAN's per-sample latent search. The score is the izi_f
loss of the sample itself:

    A(x) = mean((x - G(E(x)))^2) + kappa * mean((f(x) - f(G(E(x))))^2)

with f the discriminator's last hidden features. The paper trains a WGAN-GP; the GAN here is
the same non-saturating GAN (dense or DCGAN) as the ``anogan`` detector, so that the two
scoring methods can be compared on one trained GAN (``bench fanogan``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors import anogan, gan
from jax_anomaly.detectors.base import Detector, Fitted, Phase, adam, register
from jax_anomaly.image_scores import GAN_SCORES, check_score, split_scale, symmetric_image_score
from jax_anomaly.models import encoder_decoder
from jax_anomaly.training import masked_mean


@dataclasses.dataclass(frozen=True)
class FAnoGANConfig(gan.GANConfig):
    """The GAN (``GANConfig``) plus the encoder trained against it.

    Attributes:
      kappa: weight of the discriminator-feature residual in the izi_f loss and score.
      encoder_hidden: dense encoder layers D -> encoder_hidden -> latent (None: the
        generator's layers reversed); arch conv uses channels instead.
      encoder_epochs: epochs of the encoder phase (None: the training epochs).
      score_batch: samples per vmapped scoring chunk.
      score: the residual part of the score: loss (the izi_f loss's mean squared residual,
        default) or an image score of the residual G(E(x)) - x: mse, mean3, mean5, gauss3,
        gauss5, pyramid, ssim, peak3, or one of them standardised (``mean3_std``, ...); square
        images only (jax_anomaly.image_scores). Training is unchanged.
    """

    kappa: float = 1.0
    encoder_hidden: tuple[int, ...] | None = None
    encoder_epochs: int | None = None
    score_batch: int = 4096
    score: str = "loss"

    def __post_init__(self):
        super().__post_init__()
        if self.encoder_hidden is not None:
            object.__setattr__(self, "encoder_hidden", tuple(int(h) for h in self.encoder_hidden))
            if any(h < 1 for h in self.encoder_hidden):
                raise ValueError(f"encoder_hidden sizes must be >= 1, got {self.encoder_hidden}")
        if not self.kappa >= 0:
            raise ValueError(f"kappa must be >= 0, got {self.kappa}")
        if self.encoder_epochs is not None and self.encoder_epochs < 1:
            raise ValueError(f"encoder_epochs must be >= 1, got {self.encoder_epochs}")
        if self.score_batch < 1:
            raise ValueError(f"score_batch must be >= 1, got {self.score_batch}")
        check_score(self.score, GAN_SCORES)


# AnoGAN's GANs (its search-only presets left out).
PRESETS = {
    name: FAnoGANConfig(**gan.gan_fields(cfg)) for name, cfg in anogan.PRESETS.items() if name != "mnist_fast"
}


def build_encoder(cfg: FAnoGANConfig, n_features: int):
    hidden = cfg.encoder_hidden if cfg.encoder_hidden is not None else tuple(reversed(cfg.g_hidden))
    encoder, _ = encoder_decoder(
        cfg.arch, n_features, encoder_out=cfg.latent, hidden=hidden, channels=cfg.channels, activation="relu"
    )
    return encoder


def init_encoder_state(
    cfg: FAnoGANConfig, train: TrainConfig, n_features: int, key, previous: dict
) -> train_state.TrainState:
    """The encoder phase's state: ``params`` holds the trained ``encoder`` beside the frozen
    ``generator`` and ``discriminator`` (``previous``, the GAN phase's parameters)."""
    params = {
        "encoder": build_encoder(cfg, n_features).init(key, jnp.zeros((1, n_features)))["params"],
        **previous,
    }
    frozen = {name: "train" if name == "encoder" else "frozen" for name in params}
    tx = optax.multi_transform({"train": adam(train), "frozen": optax.set_to_zero()}, frozen)
    return train_state.TrainState.create(apply_fn=None, params=params, tx=tx)


def izi_f(cfg: FAnoGANConfig, n_features: int):
    """``(params, x (..., D)) -> dict`` of the izi_f loss per sample and its parts, with
    ``params = {'encoder', 'generator', 'discriminator'}``."""
    models = gan.build_models(cfg, n_features)
    encoder = build_encoder(cfg, n_features)

    def loss(params, x):
        z = encoder.apply({"params": params["encoder"]}, x)
        gz = models.generator.apply({"params": params["generator"]}, z)
        d = {"params": params["discriminator"]}
        _, fx = models.discriminator.apply(d, x, return_features=True)
        _, fg = models.discriminator.apply(d, gz, return_features=True)
        residual = jnp.mean(jnp.square(x - gz), axis=-1)
        feature = jnp.mean(jnp.square(fx - fg), axis=-1)
        return {
            "score": residual + cfg.kappa * feature,
            "residual": residual,
            "feature": feature,
            "z": z,
            "reconstruction": gz,
        }

    return loss


def make_sample_scorer(cfg: FAnoGANConfig, n_features: int):
    """``one(params, x) -> dict`` for one sample: izi_f's parts; with an image ``score`` the
    residual part is that score of G(E(x)) - x (``map``: its per-pixel map)."""
    loss_of = izi_f(cfg, n_features)
    if cfg.score == "loss":
        return loss_of

    def one(params, x):
        params, scale = split_scale(params)
        out = loss_of(params, x)
        residual, amap = symmetric_image_score(cfg.score, x, out["reconstruction"], scale)
        return {**out, "score": residual + cfg.kappa * out["feature"], "residual": residual, "map": amap}

    return one


def make_encoder_step(cfg: FAnoGANConfig, train: TrainConfig, n_features: int):
    """``step(state, batch, mask, key) -> (state, {'loss'})``: one Adam step of the encoder
    on the izi_f loss; G and D stay fixed."""
    loss_of = izi_f(cfg, n_features)

    def step(state, batch, mask, key):
        del key

        def loss_fn(params):
            return masked_mean(loss_of(params, batch)["score"], mask)

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return state.apply_gradients(grads=grads), {"loss": loss}

    return step


def make_encoder_eval(cfg: FAnoGANConfig, n_features: int):
    """``(state, x) -> {'loss'}``: the mean izi_f loss (early stopping of the encoder)."""
    loss_of = izi_f(cfg, n_features)

    def eval_fn(state, x):
        return {"loss": jnp.mean(loss_of(state.params, x)["score"])}

    return eval_fn


def as_anogan(fitted: Fitted, **search) -> Fitted:
    """The same trained GAN as an ``anogan`` ``Fitted`` (with ``search`` settings), to score
    it with the latent search."""
    params = {"generator": fitted.params["generator"], "discriminator": fitted.params["discriminator"]}
    cfg = anogan.AnoGANConfig(**gan.gan_fields(fitted.config), **search)
    return Fitted("anogan", cfg, params, fitted.result, fitted.n_features)


DETECTOR = register(
    Detector(
        name="fanogan",
        description="GAN + f-AnoGAN encoder (izi_f): latent in one forward pass",
        config_cls=FAnoGANConfig,
        presets=PRESETS,
        phases=(
            # The GAN has no validation loss, so early stopping applies to the encoder only.
            dataclasses.replace(
                gan.PHASE, train_config=lambda cfg, train: dataclasses.replace(train, patience=None)
            ),
            Phase(
                "encoder",
                init_encoder_state,
                make_encoder_step,
                make_encoder_eval,
                train_config=lambda cfg, train: dataclasses.replace(
                    train, epochs=cfg.encoder_epochs or train.epochs
                ),
            ),
        ),
        make_sample_scorer=make_sample_scorer,
        dataset_presets=anogan.DETECTOR.dataset_presets,
        default_preset=anogan.DETECTOR.default_preset,
        input_range="symmetric",
        estimator="FAnoGAN",
        extra_plots=gan.plot_samples,
    )
)
