"""The ``one_class`` suite: MNIST and Fashion-MNIST, each class normal in turn (train on its
training images, score the whole test set), AUROC per class, through ``jax_anomaly.run``
with the model settings of the one-class tables."""

from __future__ import annotations

from jax_anomaly.config import DataConfig, TrainConfig
from jax_anomaly.data.one_class import PUBLISHED_MEAN_AUROC
from jax_anomaly.suites.tables import Published

# Model settings of the one-class tables (experiments/one_class.py uses them too).
MODELS = {
    "ae": {"hidden": (256, 128), "latent": 32},
    "vae": {},
    "aae": {},
    "anogan": {"search_steps": 25, "search_lr": 5e-2, "search_schedule": "cosine", "search_init": 16},
    "fanogan": {},
    "geom": {},
}
# Training settings per detector over the suite's epochs and batch_size: geom's step sees K
# copies of each row; 5 epochs of batch 64 are ~470 steps of 512 images per class (shirt 82.4
# after 5 epochs, 82.3 after 10: docs/results.md); a ten-class table took 36-38 minutes on
# 2 CPU cores, scoring included.
TRAIN = {"geom": {"epochs": 5, "batch_size": 64}}
DETECTORS = ("ae",)
SEEDS = (0,)
OPTIONS = {"datasets": ("mnist", "fashion_mnist"), "epochs": 20, "batch_size": 128, "data_dir": None}


def sets(options: dict) -> list[str]:
    return [f"{ds}:{c}" for ds in options["datasets"] for c in range(10)]


def train_config(detector: str, options: dict) -> TrainConfig:
    """The suite's training settings for ``detector``: its ``TRAIN`` entry over the options'."""
    settings = {"epochs": options["epochs"], "batch_size": options["batch_size"]}
    return TrainConfig(**(settings | TRAIN.get(detector, {})))


def run_group(detector: str, name: str, seeds: list[int], options: dict) -> dict:
    """``{seed: metrics}`` with class ``c`` of ``name = 'dataset:c'`` normal."""
    from jax_anomaly.runner import RunConfig, run

    dataset, _, c = name.partition(":")
    out = {}
    for seed in seeds:
        summary = run(
            RunConfig(
                detector=detector,
                model=dict(MODELS.get(detector, {})),
                data=DataConfig(dataset=dataset, normal=(int(c),), data_dir=options.get("data_dir")),
                train=train_config(detector, options),
                seed=seed,
                out=None,
                plots=False,
                progress=False,
            )
        )
        out[seed] = {"auroc": summary["metrics"]["auroc"], "auprc": summary["metrics"]["auprc"]}
    return out


def published(options: dict) -> Published:
    overall = {
        f"{ds}: {ref}": v for ds in options["datasets"] for ref, v in PUBLISHED_MEAN_AUROC.get(ds, {}).items()
    }
    return Published(
        per_set={},
        overall=overall,
        source="the papers named, mean AUROC over the ten classes",
        note="one class normal, the whole test set scored (every other class an anomaly).",
    )
