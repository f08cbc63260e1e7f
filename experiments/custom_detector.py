"""Adding a detector without editing the package: Deep SVDD (Ruff et al. 2018) in one file.

    python experiments/custom_detector.py                 # digits, digit 0 normal, ~20 s on 2 cores
    python experiments/custom_detector.py --dataset mnist --epochs 10
    jax-anomaly run --plugin experiments/custom_detector.py --detector deep_svdd --out-dim 8

A new method is a config, a training phase (init, step) and a score written for one sample,
registered as a ``Detector``; the runner, the CLI (its config's fields become flags),
the estimators, thresholds, metrics, plots and save/load then work for it unchanged.
``docs/extending.md`` walks through this file. Expected: AUROC around 0.99 on digits
(digit 0 normal), printed with the run summary.
"""

from __future__ import annotations

import argparse
import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.training import train_state

from jax_anomaly import DataConfig, RunConfig, TrainConfig, run
from jax_anomaly.detectors import Detector, Phase, adam, register
from jax_anomaly.runner import print_summary


# 1. The hyperparameters: a frozen dataclass, validated on construction. The Attributes
# below become the CLI flags' help (--hidden, --out-dim).
@dataclasses.dataclass(frozen=True)
class SVDDConfig:
    """Deep SVDD's network.

    Attributes:
      hidden: hidden layer sizes of the feature network (no biases).
      out_dim: size of the feature space holding the centre.
    """

    hidden: tuple[int, ...] = (64, 32)
    out_dim: int = 16

    def __post_init__(self):
        if self.out_dim < 1 or any(h < 1 for h in self.hidden):
            raise ValueError(f"layer sizes must be >= 1, got hidden {self.hidden}, out_dim {self.out_dim}")


# 2. The model. Deep SVDD's network has no bias terms: with them it could map everything to
# the centre (a trivial solution).
class SVDDNet(nn.Module):
    hidden: tuple[int, ...]
    out: int

    @nn.compact
    def __call__(self, x):
        for i, width in enumerate(self.hidden):
            x = nn.leaky_relu(nn.Dense(width, use_bias=False, name=f"dense_{i}")(x), 0.1)
        return nn.Dense(self.out, use_bias=False, name="out")(x)


def init_state(cfg: SVDDConfig, train: TrainConfig, n_features: int, key):
    """Parameters ``{'net', 'center'}`` with Adam; the centre is set by ``set_center``."""
    net = SVDDNet(cfg.hidden, cfg.out_dim)
    params = {"net": net.init(key, jnp.zeros((1, n_features)))["params"], "center": jnp.zeros(cfg.out_dim)}
    return train_state.TrainState.create(apply_fn=net.apply, params=params, tx=adam(train))


def set_center(cfg: SVDDConfig, state, x_train):
    """The centre c: the mean initial output on the training data. It is never trained (the
    loss stops its gradient, so Adam leaves it as is)."""
    center = state.apply_fn({"params": state.params["net"]}, x_train).mean(0)
    return state.replace(params={**state.params, "center": center})


def distance(params, x, apply_fn):
    """Squared distance of the features of ``x`` (..., D) to the centre: (...)."""
    features = apply_fn({"params": params["net"]}, x)
    return jnp.sum(jnp.square(features - jax.lax.stop_gradient(params["center"])), axis=-1)


# 3. The loss, as a train step ``(state, batch, mask, key) -> (state, metrics)``; ``mask``
# is 0 on padding rows of the last batch.
def make_step(cfg: SVDDConfig, train: TrainConfig, n_features: int):
    def step(state, batch, mask, key):
        def loss_fn(params):
            d = distance(params, batch, state.apply_fn)
            return jnp.sum(d * mask) / jnp.maximum(mask.sum(), 1.0)

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return state.apply_gradients(grads=grads), {"loss": loss}

    return step


# 4. The score, written for one sample; the package vmaps it over chunks, shards the rows
# over the devices and compiles it once per shape.
def make_sample_scorer(cfg: SVDDConfig, n_features: int):
    net = SVDDNet(cfg.hidden, cfg.out_dim)

    def one(params, x):
        return {"score": distance(params, x, net.apply), "z": net.apply({"params": params["net"]}, x)}

    return one


# 5. Register it: from here on it is ``--detector deep_svdd`` / ``AnomalyDetector("deep_svdd")``
# / ``jax_anomaly.DeepSVDD``.
DETECTOR = register(
    Detector(
        name="deep_svdd",
        description="Deep SVDD: distance to a fixed centre in a learned feature space",
        config_cls=SVDDConfig,
        presets={"default": SVDDConfig(), "tiny": SVDDConfig(hidden=(16,), out_dim=4)},
        phases=(Phase("train", init_state, make_step, prepare_state=set_center),),
        make_sample_scorer=make_sample_scorer,
        estimator="DeepSVDD",
    )
)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="digits")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--out", help="run folder (default: none)")
    args = p.parse_args(argv)
    summary = run(
        RunConfig(
            detector="deep_svdd",
            data=DataConfig(dataset=args.dataset, normal=(0,)),
            train=TrainConfig(epochs=args.epochs, batch_size=32),
            out=args.out,
            progress=False,
        )
    )
    print_summary(summary, args.out)
    return summary


if __name__ == "__main__":
    main()
