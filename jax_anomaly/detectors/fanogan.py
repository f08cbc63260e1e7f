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
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from flax.training import train_state

from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors import anogan
from jax_anomaly.detectors.base import (
    Detector,
    Fitted,
    adam,
    check_features,
    check_fit_data,
    register,
    score_rows,
    train_with_config,
)
from jax_anomaly.models import encoder_decoder
from jax_anomaly.training import FitResult, masked_mean


@dataclasses.dataclass(frozen=True)
class FAnoGANConfig(anogan.AnoGANConfig):
    """The GAN of ``AnoGANConfig`` (its search settings are unused here) plus the encoder.

    Attributes:
      kappa: weight of the discriminator-feature residual in the izi_f loss and score.
      encoder_hidden: dense encoder layers ``D -> encoder_hidden -> latent`` (None: the
        generator's layers reversed); ``arch='conv'`` uses ``channels`` instead.
      encoder_epochs: epochs of the encoder phase (None: the training epochs).
      encoder_score_batch: samples per vmapped scoring chunk.
    """

    kappa: float = 1.0
    encoder_hidden: tuple[int, ...] | None = None
    encoder_epochs: int | None = None
    encoder_score_batch: int = 4096

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
        if self.encoder_score_batch < 1:
            raise ValueError(f"encoder_score_batch must be >= 1, got {self.encoder_score_batch}")


_GAN_FIELDS = {f.name for f in dataclasses.fields(anogan.AnoGANConfig)}
PRESETS = {
    name: FAnoGANConfig(**{k: getattr(cfg, k) for k in _GAN_FIELDS})
    for name, cfg in anogan.PRESETS.items()
    if name != "mnist_fast"
}


def gan_config(cfg: FAnoGANConfig) -> anogan.AnoGANConfig:
    """The ``AnoGANConfig`` of the same GAN (to score it with AnoGAN's latent search)."""
    return anogan.AnoGANConfig(**{k: getattr(cfg, k) for k in _GAN_FIELDS})


def build_encoder(cfg: FAnoGANConfig, n_features: int):
    hidden = cfg.encoder_hidden if cfg.encoder_hidden is not None else tuple(reversed(cfg.g_hidden))
    encoder, _ = encoder_decoder(
        cfg.arch, n_features, encoder_out=cfg.latent, hidden=hidden, channels=cfg.channels, activation="relu"
    )
    return encoder


class FAnoGANState(struct.PyTreeNode):
    """The GAN phase's state and the encoder phase's (``encoder.params`` holds the frozen
    ``generator`` and ``discriminator`` beside the trained ``encoder``)."""

    gan: anogan.GANState
    encoder: train_state.TrainState


def _encoder_state(cfg, train, n_features, gan_params, key) -> train_state.TrainState:
    params = {
        "encoder": build_encoder(cfg, n_features).init(key, jnp.zeros((1, n_features)))["params"],
        **gan_params,
    }
    frozen = {name: "train" if name == "encoder" else "frozen" for name in params}
    tx = optax.multi_transform({"train": adam(train), "frozen": optax.set_to_zero()}, frozen)
    return train_state.TrainState.create(apply_fn=None, params=params, tx=tx)


def init_state(cfg: FAnoGANConfig, train: TrainConfig, n_features: int, key: jax.Array) -> FAnoGANState:
    gan_key, enc_key = jax.random.split(key)
    gan = anogan.init_state(cfg, train, n_features, gan_key)
    gan_params = {"generator": gan.g.params, "discriminator": gan.d.params}
    return FAnoGANState(gan=gan, encoder=_encoder_state(cfg, train, n_features, gan_params, enc_key))


def izi_f(cfg: FAnoGANConfig, n_features: int):
    """``(params, x (..., D)) -> dict`` of the izi_f loss per sample and its parts, with
    ``params = {'encoder', 'generator', 'discriminator'}``."""
    models = anogan.build_models(cfg, n_features)
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
            "gz": gz,
        }

    return loss


def make_encoder_step(cfg: FAnoGANConfig, n_features: int):
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


def fit(cfg: FAnoGANConfig, train: TrainConfig, x_train, x_val=None, *, key, progress=True) -> Fitted:
    """Trains the GAN on ``x_train`` (N, D) in [-1, 1] (no early stopping: a GAN has no
    validation loss), then the encoder (izi_f, on the validation izi_f loss with
    ``train.patience``). With a checkpoint file, the encoder phase writes ``<file>.encoder``."""
    x_train, x_val = check_fit_data(x_train, x_val)
    n_features = x_train.shape[1]
    gan_key, enc_key = jax.random.split(key)
    gan_train = dataclasses.replace(train, patience=None)
    gan, gan_result = train_with_config(
        "fanogan",
        lambda k: anogan.init_state(cfg, gan_train, n_features, k),
        anogan.make_train_step(cfg),
        x_train,
        gan_train,
        key=gan_key,
        progress=progress,
    )
    gan_params = {"generator": gan.g.params, "discriminator": gan.d.params}
    checkpoint = f"{train.checkpoint}.encoder" if train.checkpoint else None
    enc_train = dataclasses.replace(
        train,
        epochs=cfg.encoder_epochs or train.epochs,
        checkpoint=checkpoint,
        resume=bool(train.resume and checkpoint and os.path.exists(checkpoint)),
    )
    loss_of = izi_f(cfg, n_features)

    def eval_fn(state, x):
        return {"loss": jnp.mean(loss_of(state.params, x)["score"])}

    enc, enc_result = train_with_config(
        "fanogan",
        lambda k: _encoder_state(cfg, enc_train, n_features, gan_params, k),
        make_encoder_step(cfg, n_features),
        x_train,
        enc_train,
        key=enc_key,
        eval_fn=eval_fn,
        val_data=x_val,
        progress=progress,
    )
    offset = len(gan_result.history)
    history = [{**h, "phase": "gan"} for h in gan_result.history] + [
        {
            "epoch": offset + h["epoch"],
            "phase": "encoder",
            **{f"encoder_{k}": v for k, v in h.items() if k != "epoch"},
        }
        for h in enc_result.history
    ]
    result = FitResult(
        history=history,
        compile_seconds=gan_result.compile_seconds + enc_result.compile_seconds,
        train_seconds=gan_result.train_seconds + enc_result.train_seconds,
        best_epoch=offset + enc_result.best_epoch,
        stopped_early=enc_result.stopped_early,
    )
    state = FAnoGANState(gan=gan, encoder=enc)
    return Fitted("fanogan", cfg, enc.params, result, n_features, state=state)


def _make_one(cfg: FAnoGANConfig, n_features: int):
    loss_of = izi_f(cfg, n_features)

    def one(params, x):
        out = loss_of(params, x)
        out["reconstruction"] = out.pop("gz")
        return out

    return one


def score(fitted: Fitted, x, *, key=None, devices: int | None = None) -> dict[str, np.ndarray]:
    """f-AnoGAN scores of ``x`` (N, D) in [-1, 1], one encoder pass per sample; higher = more
    anomalous. Returns NumPy ``score``, ``residual``, ``feature`` (N,), ``z`` = E(x)
    (N, latent) and ``reconstruction`` G(E(x)) (N, D)."""
    del key  # deterministic
    x = check_features(x, fitted.n_features)
    return score_rows(_make_one, fitted, x, devices=devices, chunk=fitted.config.encoder_score_batch)


def as_anogan(fitted: Fitted) -> Fitted:
    """The same trained GAN as an ``anogan`` ``Fitted``: score it with the latent search."""
    params = {"generator": fitted.params["generator"], "discriminator": fitted.params["discriminator"]}
    return Fitted("anogan", gan_config(fitted.config), params, fitted.result, fitted.n_features)


DETECTOR = register(
    Detector(
        name="fanogan",
        description="GAN + f-AnoGAN encoder (izi_f): latent in one forward pass",
        config_cls=FAnoGANConfig,
        presets=PRESETS,
        preset_for=anogan.DETECTOR.preset_for,
        input_range="symmetric",
        fit=fit,
        score=score,
        extra_plots=lambda fitted, *a, **k: anogan.plot_samples(as_anogan(fitted), *a, **k),
        init_state=init_state,
    )
)
