"""Dense autoencoder detector: train on normals to reconstruct, score by reconstruction error."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax.training import train_state

from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors.base import Detector, Phase, adam, register
from jax_anomaly.image_scores import check_score, reconstruction_score, split_scale
from jax_anomaly.models import EncoderDecoder, autoencoder_pair, check_autoencoder_config
from jax_anomaly.training import masked_mean
from jax_anomaly.training.losses import RECONSTRUCTION_LOSSES, per_sample_loss


@dataclasses.dataclass(frozen=True)
class AEConfig:
    """Autoencoder ``D -> hidden -> latent -> hidden[::-1] -> D`` (``arch='dense'``), or
    stride-2 convolutions ``channels`` -> latent -> transposed convolutions (``arch='conv'``,
    square images; ``arch='conv1d'``, windows of a series), or a GRU sequence autoencoder
    (``arch='gru'``, ``hidden[0]`` units).

    Attributes:
      hidden: hidden layer sizes of the dense encoder (mirrored in the decoder), e.g. 128,64,12.
      latent: latent size.
      activation: hidden activation (relu, leaky_relu, ...; None: ReLU dense, LeakyReLU conv).
      output_activation: sigmoid (data in [0, 1]) or linear.
      loss: mse or bce: the training loss (and, with score loss, the anomaly score).
      score: loss (the per-sample training loss, default) or an image score of the residual:
        mse, mean3, mean5, gauss3, gauss5 (the residual averaged over a window, then squared),
        pyramid (multi-scale), ssim (1 - SSIM), peak3 (the top 10 % of the mean3 map); square
        images only (jax_anomaly.image_scores).
        A ``_std`` suffix (loss_std, mean3_std, ...) divides each pixel's map by a scale
        fitted on the held-out normal maps.
      score_batch: samples per vmapped scoring chunk.
      arch: dense MLPs, conv (convolutional networks; square grey or RGB images), conv1d
        (1-D convolutions over a window's steps) or gru (recurrent; hidden[0] units).
      channels: conv/conv1d channels per stride-2 level, e.g. 32,64.
      in_channels: channels of each step of a conv1d/gru window (set from the series).
    """

    hidden: tuple[int, ...] = (128, 64, 12)
    latent: int = 3
    activation: str | None = None
    output_activation: str = "sigmoid"
    loss: str = "mse"
    score: str = "loss"
    score_batch: int = 4096
    arch: str = "dense"
    channels: tuple[int, ...] = (32, 64)
    in_channels: int = 1

    def __post_init__(self):
        check_autoencoder_config(self)
        if self.loss not in RECONSTRUCTION_LOSSES:
            raise ValueError(f"unknown loss '{self.loss}'; expected one of {RECONSTRUCTION_LOSSES}")
        if self.loss == "bce" and self.output_activation != "sigmoid":
            raise ValueError("loss 'bce' needs output_activation 'sigmoid' (outputs in (0, 1))")
        if self.score_batch < 1:
            raise ValueError(f"score_batch must be >= 1, got {self.score_batch}")
        check_score(self.score)


# The 28x28 presets score the residual averaged over 3x3 windows (mean3): picked on MNIST's
# one-class table (96.4 -> 97.3 mean AUROC) and confirmed untouched on Fashion-MNIST
# (91.1 -> 93.0); docs/results.md, experiments/image_scores.py.
PRESETS = {
    # 784-128-64-12-3 mirrored, sigmoid output: the classic MNIST autoencoder tutorial.
    "mnist_tutorial": AEConfig(hidden=(128, 64, 12), latent=3, score="mean3"),
    # 784-128-32 relu with sigmoid output: the Fashion-MNIST anomaly detection lab.
    "fashion_lab": AEConfig(hidden=(128,), latent=32, score="mean3"),
    # 20-10-20 for the synthetic Gaussian case (MinMax-scaled tabular data: linear output).
    "synthetic": AEConfig(hidden=(), latent=10, output_activation="linear"),
    # Windows of a series (``timeseries.SERIES_PRESET``), linear output: windows are min-max
    # scaled on the training series and test values may leave [0, 1]. The synthetic preset's
    # 20-10-20 map missed the ECG series' anomalies (VUS-PR 0.19, AUC-ROC 0.41) and the
    # synthetic collective ones (0.68); this one gets 0.88 and 0.96 and keeps the other series
    # within 0.03 (docs/results.md, 2026-12-03).
    "series": AEConfig(hidden=(64, 32), latent=8, output_activation="linear"),
    # 8x8 digits, the embedded default data set.
    "digits": AEConfig(hidden=(32,), latent=8),
    "tiny": AEConfig(hidden=(16,), latent=4),
}


def build_model(cfg: AEConfig, n_features: int) -> EncoderDecoder:
    return EncoderDecoder(*autoencoder_pair(cfg, n_features))


def init_state(cfg: AEConfig, train: TrainConfig, n_features: int, key: jax.Array):
    """A flax ``TrainState`` with freshly initialised parameters and Adam."""
    model = build_model(cfg, n_features)
    params = model.init(key, jnp.zeros((1, n_features), jnp.float32))["params"]
    return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=adam(train))


def make_step(cfg: AEConfig, train: TrainConfig, n_features: int):
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


def make_eval(cfg: AEConfig, n_features: int):
    """``(state, x) -> {'loss'}``: mean reconstruction loss on a validation set."""

    def eval_fn(state, x):
        recon = state.apply_fn({"params": state.params}, x)
        return {"loss": jnp.mean(per_sample_loss(recon, x, cfg.loss))}

    return eval_fn


def make_sample_scorer(cfg: AEConfig, n_features: int):
    """``one(params, x) -> {'score', 'map', 'reconstruction'}`` for one sample: the
    reconstruction score of ``cfg.score`` (higher = more anomalous) and its per-feature map."""
    model = build_model(cfg, n_features)

    def one(params, x):
        params, scale = split_scale(params)
        recon = model.apply({"params": params}, x)
        score, amap = reconstruction_score(cfg.score, cfg.loss, x, recon, scale)
        return {"score": score, "map": amap, "reconstruction": recon}

    return one


DETECTOR = register(
    Detector(
        name="ae",
        description="autoencoder, reconstruction-error score",
        config_cls=AEConfig,
        presets=PRESETS,
        phases=(Phase("train", init_state, make_step, make_eval),),
        make_sample_scorer=make_sample_scorer,
        dataset_presets={"mnist": "mnist_tutorial", "fashion_mnist": "fashion_lab", "digits": "digits"},
        default_preset="synthetic",
        estimator="AutoEncoder",
    )
)

# The sequence autoencoders for windows of a time series: the same method with the conv1d and
# gru networks (models/sequence.py); linear output (windows are min-max scaled on the
# training series, test values may leave [0, 1]).
CONV1D_DETECTOR = register(
    dataclasses.replace(
        DETECTOR,
        name="conv1d_ae",
        description="1-D convolutional autoencoder over windows of a series, reconstruction-error score",
        presets={
            "default": AEConfig(arch="conv1d", channels=(16, 32), latent=16, output_activation="linear"),
            "tiny": AEConfig(arch="conv1d", channels=(8,), latent=4, output_activation="linear"),
        },
        dataset_presets={},
        default_preset="default",
        estimator=None,
    )
)
RNN_DETECTOR = register(
    dataclasses.replace(
        DETECTOR,
        name="rnn_ae",
        description="GRU sequence autoencoder over windows of a series, reconstruction-error score",
        presets={
            "default": AEConfig(arch="gru", hidden=(64,), latent=16, output_activation="linear"),
            "tiny": AEConfig(arch="gru", hidden=(8,), latent=4, output_activation="linear"),
        },
        dataset_presets={},
        default_preset="default",
        estimator=None,
    )
)
