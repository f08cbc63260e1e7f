"""jax_anomaly: anomaly detection with autoencoders and GANs in JAX/Flax."""

__version__ = "0.1.0"

from jax_anomaly.config import DataConfig, TrainConfig  # noqa: E402
from jax_anomaly.estimators import AnoGAN, AnomalyDetector, AutoEncoder, load  # noqa: E402
from jax_anomaly.runner import RunConfig, run  # noqa: E402

__all__ = [
    "AnoGAN",
    "AnomalyDetector",
    "AutoEncoder",
    "DataConfig",
    "RunConfig",
    "TrainConfig",
    "__version__",
    "load",
    "run",
]
