"""The small interface every detector implements, and the registry that names them."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from jax_anomaly.config import TrainConfig
from jax_anomaly.sharding import local_rows, make_mesh, map_samples, shard_samples
from jax_anomaly.training import FitResult


@dataclasses.dataclass(frozen=True)
class Fitted:
    """A trained detector: its config, parameters (pytree), training record, and the final
    train state (parameters with optimiser state; None when loaded without one)."""

    detector: str
    config: Any
    params: Any
    result: FitResult | None
    n_features: int
    state: Any = None


@dataclasses.dataclass(frozen=True)
class Detector:
    """A detector as a bundle of pure functions (like optax's ``GradientTransformation``).

    Attributes:
      name: registry name (``--detector``).
      description: one line for ``--help``.
      config_cls: frozen dataclass of the model/scoring hyperparameters.
      presets: named configs; every detector has ``'tiny'`` (used by the fast tests).
      preset_for: data set name -> preset name used when none is given.
      input_range: ``'unit'`` (data in [0, 1]) or ``'symmetric'`` ([-1, 1], tanh generators).
      fit: ``(config, train_config, x_train, x_val, *, key, progress) -> Fitted``.
      score: ``(fitted, x, *, key, devices=None) -> dict`` with ``'score'`` (N,), higher = more
        anomalous, and optionally ``'reconstruction'`` (N, D) and other per-sample parts; the
        samples are sharded over ``devices`` devices (None: all).
      extra_plots: optional ``(fitted, plots_dir, image_shape, *, key) -> None`` for plots
        of the method's own (e.g. generated samples).
      init_state: optional ``(config, train_config, n_features, key) -> train state``; lets a
        saved model's optimiser state be restored into its typed structure.
    """

    name: str
    description: str
    config_cls: type
    presets: Mapping[str, Any]
    preset_for: Callable[[str], str]
    input_range: str
    fit: Callable[..., Fitted]
    score: Callable[..., dict[str, np.ndarray]]
    extra_plots: Callable[..., None] | None = None
    init_state: Callable[..., Any] | None = None

    def to_input(self, x: np.ndarray) -> np.ndarray:
        """Data in [0, 1] -> the detector's input range."""
        return 2.0 * x - 1.0 if self.input_range == "symmetric" else x

    def from_input(self, x: np.ndarray) -> np.ndarray:
        """The detector's input range (e.g. a reconstruction) -> [0, 1]."""
        return (x + 1.0) / 2.0 if self.input_range == "symmetric" else x

    def config(self, preset: str | None = None, dataset: str = "", **overrides):
        """The preset's config (by name, or the one for ``dataset``) with ``overrides``."""
        from jax_anomaly.config import replace

        name = preset or self.preset_for(dataset)
        if name not in self.presets:
            raise ValueError(
                f"detector '{self.name}' has no preset '{name}'; presets: {sorted(self.presets)}"
            )
        return replace(self.presets[name], **overrides)


_REGISTRY: dict[str, Detector] = {}


def register(detector: Detector) -> Detector:
    """Adds a detector to the registry (a new method is one new file calling this)."""
    if not {"tiny"} <= set(detector.presets):
        raise ValueError(f"detector '{detector.name}' needs a 'tiny' preset for the tests")
    _REGISTRY[detector.name] = detector
    return detector


def get_detector(name: str) -> Detector:
    """The registered detector called ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown detector '{name}'; expected one of {sorted(_REGISTRY)}") from None


def detector_names() -> list[str]:
    return sorted(_REGISTRY)


def check_features(x, n_features: int | None = None, what: str = "x") -> np.ndarray:
    """Validates a data matrix at a public boundary: numeric, rank 2, non-empty, finite, and
    (when given) ``n_features`` columns. Returns it as float32."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{what} must be numeric, got dtype {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{what} must have shape (N, D), got shape {x.shape}")
    if len(x) == 0:
        raise ValueError(f"{what} is empty")
    if n_features is not None and x.shape[1] != n_features:
        raise ValueError(f"{what} has {x.shape[1]} features; the detector was fitted on {n_features}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} contains NaN or inf values")
    return x.astype(np.float32)


def check_fit_data(x_train, x_val=None) -> tuple[np.ndarray, np.ndarray | None]:
    """``fit``'s data checks: ``x_train`` as in ``check_features``; ``x_val`` the same with
    the training feature count, or None when absent or empty (no validation loss then)."""
    x_train = check_features(x_train, what="training data")
    if x_val is None or len(x_val) == 0:
        return x_train, None
    return x_train, check_features(x_val, x_train.shape[1], what="validation data")


def sample_keys(key, x: np.ndarray):
    """One PRNG key per row of ``x``: ``key`` folded with a 32-bit hash of the row's bytes.

    Random draws made with these keys (AnoGAN's initial latents, Monte-Carlo samples) make a
    sample's score a function of the sample alone: the same row gets the same draw in any
    batch, at any position.
    """
    rows = (
        np.ascontiguousarray(np.asarray(x, np.float32)).reshape(len(x), -1).view(np.uint32).astype(np.uint64)
    )
    weights = np.random.default_rng(0x5EED).integers(1, 2**32, size=rows.shape[1], dtype=np.uint64) | 1
    hashes = ((rows * weights) % 2**32).sum(axis=1) % 2**32  # no overflow: < 2**64 per term
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, hashes.astype(np.uint32))


def train_with_config(
    name: str,
    init_state: Callable,
    step: Callable,
    x_train: np.ndarray,
    train: TrainConfig,
    *,
    key,
    eval_fn: Callable | None = None,
    val_data=None,
    progress=True,
):
    """Initialises a state with ``init_state(key)`` and trains it with the on-device epoch
    loop under ``train``'s settings. Returns ``(state, FitResult)``. ``eval_fn`` (the
    validation loss) is used only when ``val_data`` is given.

    Raises:
      ValueError: early stopping asked for (``train.patience``) without a validation loss.
    """
    from jax_anomaly.training import fit

    if val_data is None:
        eval_fn = None
    if train.patience is not None and eval_fn is None:
        raise ValueError(
            f"early stopping (patience) needs a validation loss: detector '{name}' has none here "
            "(no validation data, or a method without one)"
        )
    init_key, train_key = jax.random.split(key)
    return fit(
        init_state(init_key),
        step,
        x_train,
        epochs=train.epochs,
        batch_size=train.batch_size,
        key=train_key,
        eval_fn=eval_fn,
        val_data=val_data,
        patience=train.patience,
        drop_remainder=train.drop_remainder,
        unroll=train.unroll,
        progress=progress,
        devices=train.devices,
        checkpoint=train.checkpoint,
        checkpoint_every=train.checkpoint_every or 1,
        resume=train.resume,
    )


def adam(train: TrainConfig, default_b1: float = 0.9):
    """The optax Adam every detector uses; ``train.b1`` when set, else ``default_b1``."""
    import optax

    b1 = default_b1 if train.b1 is None else train.b1
    return optax.adam(train.learning_rate, b1=b1, b2=train.b2)


@functools.lru_cache(maxsize=64)
def _row_scorer(make_one: Callable, config, n_features: int, mesh, chunk: int):
    one = make_one(config, n_features)

    def local(params, *xs):
        return jax.lax.map(lambda row: one(params, *row), xs, batch_size=chunk)

    return shard_samples(local, mesh)


def score_rows(make_one: Callable, fitted: Fitted, x: np.ndarray, *extra, devices=None, chunk: int = 4096):
    """Runs a per-sample score function over every row of ``x``, compiled once per shape.

    Args:
      make_one: ``(config, n_features) -> one(params, x_row, *extra_rows) -> dict`` (a
        module-level function: it keys the compile cache); ``one`` is written for one sample
        and vmapped over chunks of ``chunk`` rows by ``lax.map``.
      fitted: the trained detector (its config, params and feature count).
      x: (N, D) samples, already checked.
      extra: more per-sample arrays (N, ...), e.g. noise drawn with ``sample_keys``.
      devices: shard the rows over the first ``devices`` devices (None: all).

    Returns:
      ``one``'s dict with every entry stacked over the N rows, as NumPy arrays.
    """
    mesh = make_mesh(devices)
    chunk = min(chunk, local_rows(len(x), mesh))
    scorer = _row_scorer(make_one, fitted.config, fitted.n_features, mesh, chunk)
    return map_samples(scorer, mesh, fitted.params, x, *extra)
