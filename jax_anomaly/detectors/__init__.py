"""Anomaly detection methods, each one file registering a ``Detector``.

A new method needs no edit here: define its config, training phase and per-sample score
and call ``register`` (``docs/extending.md``, ``experiments/custom_detector.py``); an
outside module is loaded with ``--plugin`` or the ``jax_anomaly.detectors`` entry point.
"""

from jax_anomaly.detectors import aae, anogan, autoencoder, baselines, fanogan, geom, goad, tabular, vae  # noqa: F401  (each registers itself)
from jax_anomaly.detectors.base import (
    Detector,
    Fitted,
    Phase,
    adam,
    check_features,
    check_fit_data,
    detector_names,
    get_detector,
    load_plugin,
    register,
    registry,
    sample_keys,
)

# What a user gets with no detector named: ``AnomalyDetector()``, ``jax-anomaly run``.
DEFAULT_DETECTOR = "tabular"

__all__ = [
    "DEFAULT_DETECTOR",
    "Detector",
    "Fitted",
    "Phase",
    "adam",
    "check_features",
    "check_fit_data",
    "detector_names",
    "get_detector",
    "load_plugin",
    "register",
    "registry",
    "sample_keys",
]
