"""Anomaly detection methods, each one file registering a ``Detector``."""

from jax_anomaly.detectors import aae, anogan, autoencoder, fanogan, vae  # noqa: F401  (each registers itself)
from jax_anomaly.detectors.base import Detector, Fitted, detector_names, get_detector, register

__all__ = ["Detector", "Fitted", "detector_names", "get_detector", "register"]
