"""jax_anomaly: anomaly detection with autoencoders and GANs in JAX/Flax."""

__version__ = "0.1.0"

from jax_anomaly.config import DataConfig, TrainConfig  # noqa: E402
from jax_anomaly.estimators import (  # noqa: E402
    VAE,
    AdversarialAutoEncoder,
    AnoGAN,
    AnomalyDetector,
    AutoEncoder,
    FAnoGAN,
    load,
)
from jax_anomaly.runner import RunConfig, run  # noqa: E402

__all__ = [
    "VAE",
    "AdversarialAutoEncoder",
    "AnoGAN",
    "AnomalyDetector",
    "AutoEncoder",
    "DataConfig",
    "FAnoGAN",
    "RunConfig",
    "TrainConfig",
    "__version__",
    "load",
    "run",
]
