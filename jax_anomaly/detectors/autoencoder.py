"""Dense autoencoder detector: train on normals to reconstruct, score by reconstruction error."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax.training import train_state
from jax.sharding import Mesh

from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors.base import Detector, Fitted, adam, check_features, register, train_with_config
from jax_anomaly.models import DenseAutoencoder, activation
from jax_anomaly.sharding import local_rows, make_mesh, map_samples, shard_samples
from jax_anomaly.training import masked_mean

_LOSSES = ("mse", "bce")
_EPS = 1e-7


@dataclasses.dataclass(frozen=True)
class AEConfig:
    """Dense autoencoder ``D -> hidden -> latent -> hidden[::-1] -> D``.

    ``loss`` is both the training loss and the anomaly score (per-sample mean over features).
    """

    hidden: tuple[int, ...] = (128, 64, 12)
    latent: int = 3
    activation: str = "relu"
    output_activation: str = "sigmoid"
    loss: str = "mse"
    score_batch: int = 4096

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if any(h < 1 for h in self.hidden) or self.latent < 1:
            raise ValueError(f"layer sizes must be >= 1: hidden {self.hidden}, latent {self.latent}")
        activation(self.activation), activation(self.output_activation)
        if self.loss not in _LOSSES:
            raise ValueError(f"unknown loss '{self.loss}'; expected one of {_LOSSES}")
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


def build_model(cfg: AEConfig, n_features: int) -> DenseAutoencoder:
    return DenseAutoencoder(
        hidden=cfg.hidden,
        latent=cfg.latent,
        out_features=n_features,
        activation=cfg.activation,
        output_activation=cfg.output_activation,
    )


def per_sample_loss(recon: jax.Array, x: jax.Array, loss: str) -> jax.Array:
    """Per-sample reconstruction error ``(..., D) -> (...)``: MSE or binary cross-entropy."""
    if loss == "mse":
        return jnp.mean(jnp.square(recon - x), axis=-1)
    p = jnp.clip(recon, _EPS, 1.0 - _EPS)
    return -jnp.mean(x * jnp.log(p) + (1.0 - x) * jnp.log1p(-p), axis=-1)


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
    x_train = check_features(x_train, what="training data")
    has_val = x_val is not None and len(x_val) > 0
    if has_val:
        x_val = check_features(x_val, x_train.shape[1], what="validation data")
    state, result = train_with_config(
        "ae",
        lambda k: init_state(cfg, train, x_train.shape[1], k),
        make_train_step(cfg),
        x_train,
        train,
        key=key,
        eval_fn=make_eval_fn(cfg) if has_val else None,
        val_data=x_val if has_val else None,
        progress=progress,
    )
    return Fitted("ae", cfg, state.params, result, x_train.shape[1], state=state)


@functools.lru_cache(maxsize=32)
def _scorer(cfg: AEConfig, n_features: int, mesh: Mesh, chunk: int):
    model = build_model(cfg, n_features)

    def one(params, x):
        recon = model.apply({"params": params}, x)
        return per_sample_loss(recon, x, cfg.loss), recon

    def local(params, x):
        return jax.lax.map(lambda xi: one(params, xi), x, batch_size=chunk)

    return shard_samples(local, mesh)


def score(fitted: Fitted, x, *, key=None, devices: int | None = None) -> dict[str, np.ndarray]:
    """Per-sample reconstruction error (higher = more anomalous) and the reconstructions,
    computed in jitted chunks of ``score_batch`` samples per device, the samples sharded over
    the first ``devices`` devices (None: all)."""
    del key
    x = check_features(x, fitted.n_features)
    mesh = make_mesh(devices)
    chunk = min(fitted.config.score_batch, local_rows(len(x), mesh))
    scorer = _scorer(fitted.config, fitted.n_features, mesh, chunk)
    errors, recon = map_samples(scorer, mesh, fitted.params, x)
    return {"score": errors, "reconstruction": recon}


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
