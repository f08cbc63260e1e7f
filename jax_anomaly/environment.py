"""What a result was produced with: package versions, backend and devices (a leaf module)."""

from __future__ import annotations

import platform

import flax
import jax
import numpy as np
import optax
import sklearn

VERSION = "0.1.0"


def versions() -> dict:
    """Versions of this package, its numerical stack and Python, the JAX backend and devices."""
    return {
        "jax_anomaly": VERSION,
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "python": platform.python_version(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
    }
