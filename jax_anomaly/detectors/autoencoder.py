"""Dense autoencoder detector: train on normals to reconstruct, score by reconstruction error."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax.training import train_state

from jax_anomaly.config import TrainConfig
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
from jax_anomaly.models import EncoderDecoder, check_autoencoder_config, encoder_decoder
from jax_anomaly.training import masked_mean
from jax_anomaly.training.losses import RECONSTRUCTION_LOSSES, per_sample_loss


@dataclasses.dataclass(frozen=True)
class AEConfig:
    """Autoencoder ``D -> hidden -> latent -> hidden[::-1] -> D`` (``arch='dense'``), or
    stride-2 convolutions ``channels`` -> latent -> transposed convolutions (``arch='conv'``,
    square images; ``hidden`` is then unused).

    ``loss`` is both the training loss and the anomaly score (per-sample mean over features).
    """

    hidden: tuple[int, ...] = (128, 64, 12)
    latent: int = 3
    activation: str | None = None
    output_activation: str = "sigmoid"
    loss: str = "mse"
    score_batch: int = 4096
    arch: str = "dense"
    channels: tuple[int, ...] = (32, 64)

    def __post_init__(self):
        check_autoencoder_config(self)
        if self.loss not in RECONSTRUCTION_LOSSES:
            raise ValueError(f"unknown loss '{self.loss}'; expected one of {RECONSTRUCTION_LOSSES}")
        if self.loss == "bce" and self.output_activation != "sigmoid":
            raise ValueError("loss 'bce' needs output_activation 'sigmoid' (outputs in (0, 1))")
        if self.score_batch < 1:
            raise ValueError(f"score_batch must be >= 1, got {self.score_batch}")


PRESETS = {
    # 784-128-64-12-3 mirrored, sigmoid output: the classic MNIST autoencoder tutorial.
    "mnist_tutorial": AEConfig(hidden=(128, 64, 12), latent=3),
    # 784-128-32 relu with sigmoid output: the Fashion-MNIST anomaly detection lab.
    "fashion_lab": AEConfig(hidden=(128,), latent=32),
    # 20-10-20 for the synthetic Gaussian case (MinMax-scaled tabular data: linear output).
    "synthetic": AEConfig(hidden=(), latent=10, output_activation="linear"),
    # 8x8 digits, the embedded default data set.
    "digits": AEConfig(hidden=(32,), latent=8),
    "tiny": AEConfig(hidden=(16,), latent=4),
}


def _preset_for(dataset: str) -> str:
    return {"mnist": "mnist_tutorial", "fashion_mnist": "fashion_lab", "digits": "digits"}.get(
        dataset, "synthetic"
    )


def build_model(cfg: AEConfig, n_features: int) -> EncoderDecoder:
    encoder, decoder = encoder_decoder(
        cfg.arch,
        n_features,
        encoder_out=cfg.latent,
        hidden=cfg.hidden,
        channels=cfg.channels,
        activation=cfg.activation,
        output_activation=cfg.output_activation,
    )
    return EncoderDecoder(encoder, decoder)


def init_state(cfg: AEConfig, train: TrainConfig, n_features: int, key: jax.Array):
    """A flax ``TrainState`` with freshly initialised parameters and Adam."""
    model = build_model(cfg, n_features)
    params = model.init(key, jnp.zeros((1, n_features), jnp.float32))["params"]
    return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=adam(train))


def make_train_step(cfg: AEConfig):
    """``step(state, batch, mask, key) -> (state, {'loss'})``: grad, Adam update and apply
    in one function (jit it, or let the epoch scan compile it)."""

    def step(state, batch, mask, key):
        del key  # deterministic model

        def loss_fn(params):
            recon = state.apply_fn({"params": params}, batch)
            return masked_mean(per_sample_loss(recon, batch, cfg.loss), mask)

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return state.apply_gradients(grads=grads), {"loss": loss}

    return step


def make_eval_fn(cfg: AEConfig):
    """``(state, x) -> {'loss'}``: mean reconstruction loss on a validation set."""

    def eval_fn(state, x):
        recon = state.apply_fn({"params": state.params}, x)
        return {"loss": jnp.mean(per_sample_loss(recon, x, cfg.loss))}

    return eval_fn


def fit(cfg: AEConfig, train: TrainConfig, x_train, x_val=None, *, key, progress=True) -> Fitted:
    """Trains the autoencoder on normal data ``x_train`` (N, D).

    Validation loss on ``x_val`` is reported every epoch and drives early stopping when
    ``train.patience`` is set.
    """
    x_train, x_val = check_fit_data(x_train, x_val)
    state, result = train_with_config(
        "ae",
        lambda k: init_state(cfg, train, x_train.shape[1], k),
        make_train_step(cfg),
        x_train,
        train,
        key=key,
        eval_fn=make_eval_fn(cfg),
        val_data=x_val,
        progress=progress,
    )
    return Fitted("ae", cfg, state.params, result, x_train.shape[1], state=state)


def _make_one(cfg: AEConfig, n_features: int):
    model = build_model(cfg, n_features)

    def one(params, x):
        recon = model.apply({"params": params}, x)
        return {"score": per_sample_loss(recon, x, cfg.loss), "reconstruction": recon}

    return one


def score(fitted: Fitted, x, *, key=None, devices: int | None = None) -> dict[str, np.ndarray]:
    """Per-sample reconstruction error (higher = more anomalous) and the reconstructions,
    computed in jitted chunks of ``score_batch`` samples per device, the samples sharded over
    the first ``devices`` devices (None: all)."""
    del key
    x = check_features(x, fitted.n_features)
    return score_rows(_make_one, fitted, x, devices=devices, chunk=fitted.config.score_batch)


DETECTOR = register(
    Detector(
        name="ae",
        description="dense autoencoder, reconstruction-error score",
        config_cls=AEConfig,
        presets=PRESETS,
        preset_for=_preset_for,
        input_range="unit",
        fit=fit,
        score=score,
        init_state=init_state,
    )
)
