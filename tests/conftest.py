"""Shared fixtures: small data sets and trained detectors, built once per session."""

from pathlib import Path

import jax
import pytest

from jax_anomaly.config import DataConfig, TrainConfig
from jax_anomaly.runner import RunConfig, prepare_data

jax.config.update("jax_debug_key_reuse", True)
# One CPU device for the whole session: the CLI's one-device-per-core setting
# (sharding.use_cpu_cores_as_devices) must not depend on which test starts JAX first.
jax.config.update("jax_num_cpu_devices", 1)
# Equivalence tests compare algorithms, not matmul units: on GPUs the default fp32 matmul
# is TF32, whose rounding differs between a batched and a per-sample call.
jax.config.update("jax_default_matmul_precision", "float32")
# Every fit builds its step anew, so jit's in-memory cache misses programs compiled before
# (scikit-learn's checks fit the same tiny models dozens of times); the persistent cache
# serves them from disk instead (under .pytest_cache, ignored by git; cold on a fresh clone).
jax.config.update(
    "jax_compilation_cache_dir", str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax")
)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


def _data(dataset, seed=0):
    return prepare_data(RunConfig(data=DataConfig(dataset=dataset, normal=(0,)), seed=seed))


@pytest.fixture(scope="session")
def synthetic():
    """1000 N(0,1) normals + 50 N(5,1) anomalies in 20-d, one-class split, MinMax-scaled."""
    return _data("synthetic")


@pytest.fixture(scope="session")
def digits():
    """sklearn 8x8 digits, digit 0 normal, scaled to [0, 1]."""
    return _data("digits")


@pytest.fixture(scope="session")
def defect_tiles():
    """16x16 grey tiles (a smooth random gradient plus noise): 300 normal to train, 60 to
    validate; 40 normal and 40 with a dark 3x3 spot or a 1-pixel dark line to test, with
    their masks (N, 16, 16). Rows of 256 pixels in [0, 1]."""
    import types

    import numpy as np

    rng = np.random.default_rng(0)
    side = 16

    def tiles(n):
        ramp = np.linspace(-1, 1, side)
        gx, gy = rng.uniform(-0.15, 0.15, (2, n, 1, 1))
        base = 0.5 + gx * ramp[None, None, :] + gy * ramp[None, :, None]
        return base + 0.03 * rng.standard_normal((n, side, side))

    def defective(n):
        x, masks = tiles(n), np.zeros((n, side, side), bool)
        for i in range(n):
            r, c = rng.integers(2, side - 5, 2)
            if i % 2:
                masks[i, r : r + 3, c : c + 3] = True
            else:
                masks[i, r, 2 : side - 2] = True
        x[masks] *= 0.4
        return x, masks

    bad, bad_masks = defective(40)
    x_test = np.concatenate([tiles(40), bad])
    flat = lambda x: np.clip(x, 0.0, 1.0).reshape(len(x), -1).astype(np.float32)  # noqa: E731
    return types.SimpleNamespace(
        x_train=flat(tiles(300)),
        x_val=flat(tiles(60)),
        x_test=flat(x_test),
        y_test=np.r_[np.zeros(40), np.ones(40)].astype(int),
        masks=np.concatenate([np.zeros((40, side, side), bool), bad_masks]),
    )


@pytest.fixture(scope="session")
def fast_train():
    return TrainConfig(epochs=30, batch_size=32)


@pytest.fixture(scope="session")
def synthetic_ae_estimator():
    """An AutoEncoder fitted on MinMax-scaled N(0, I) normals (20-d), and its scaler."""
    import numpy as np
    from sklearn.preprocessing import MinMaxScaler

    from jax_anomaly import AutoEncoder

    x = np.random.default_rng(1).normal(size=(1000, 20))
    scaler = MinMaxScaler().fit(x)
    est = AutoEncoder(preset="synthetic", epochs=20, batch_size=32).fit(
        scaler.transform(x).astype(np.float32)
    )
    return est, scaler
