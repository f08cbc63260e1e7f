"""Anomaly detection methods, each one file registering a ``Detector``.

A new method needs no edit here: define its config, ``fit`` and ``score`` with the helpers
below and call ``register`` (``docs/extending.md``, ``experiments/custom_detector.py``).
"""

from jax_anomaly.detectors import aae, anogan, autoencoder, fanogan, vae  # noqa: F401  (each registers itself)
from jax_anomaly.detectors.base import (
    Detector,
    Fitted,
    adam,
    check_features,
    detector_names,
    get_detector,
    register,
    sample_keys,
    score_rows,
    train_with_config,
)

__all__ = [
    "Detector",
    "Fitted",
    "adam",
    "check_features",
    "detector_names",
    "get_detector",
    "register",
    "sample_keys",
    "score_rows",
    "train_with_config",
]
