"""Anomaly detection methods, each one file registering a ``Detector``.

A new method needs no edit here: define its config, training phase and per-sample score
and call ``register`` (``docs/extending.md``, ``experiments/custom_detector.py``); an
outside module is loaded with ``--plugin`` or the ``jax_anomaly.detectors`` entry point.
"""

# Each module registers its detectors when imported.
from jax_anomaly.detectors import (  # noqa: F401
    aae,
    anogan,
    autoencoder,
    baselines,
    defects,
    fanogan,
    geom,
    goad,
    tabular,
    vae,
)
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
# ... and on photographs (``jax-anomaly run --dataset magnetic_tile`` or ``folder:PATH``).
DEFAULT_IMAGE_DETECTOR = "defects"

__all__ = [
    "DEFAULT_DETECTOR",
    "DEFAULT_IMAGE_DETECTOR",
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
