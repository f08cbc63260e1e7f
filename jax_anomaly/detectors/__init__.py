"""Anomaly detection methods, each one file registering a ``Detector``."""

from jax_anomaly.detectors import autoencoder  # noqa: F401  (registers 'ae')
from jax_anomaly.detectors.base import Detector, Fitted, detector_names, get_detector, register

__all__ = ["Detector", "Fitted", "detector_names", "get_detector", "register"]
