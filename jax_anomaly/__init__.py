"""jax_anomaly: anomaly detection with autoencoders and GANs in JAX/Flax."""

from jax_anomaly import estimators as _estimators
from jax_anomaly.config import DataConfig, TrainConfig
from jax_anomaly.environment import VERSION as __version__
from jax_anomaly.estimators import AnomalyDetector, load
from jax_anomaly.runner import RunConfig, run
from jax_anomaly.sweep import Sweep, sweep
from jax_anomaly.timeseries.estimator import SeriesDetector


def __getattr__(name: str):
    """The estimator classes of the registered detectors (``AutoEncoder``, ``VAE``, ...)."""
    if not name.startswith("_"):
        try:
            return getattr(_estimators, name)
        except AttributeError:
            pass
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_estimators.estimator_names()})


__all__ = [  # noqa: PLE0604  (the estimator classes come from the registry)
    "AnomalyDetector",
    "DataConfig",
    "RunConfig",
    "SeriesDetector",
    "Sweep",
    "TrainConfig",
    "__version__",
    "load",
    "run",
    "sweep",
    *_estimators.estimator_names(),
]
