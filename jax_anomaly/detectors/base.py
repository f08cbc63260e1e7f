"""The detector contract (pure functions), the one ``fit`` and ``score`` every detector
shares, and the registry that names them."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jax_anomaly.config import TrainConfig, replace
from jax_anomaly.sharding import local_rows, make_mesh, map_samples, pad_to, replicate, shard_samples
from jax_anomaly.training import FitResult, Progress, fit_loop

INPUT_RANGES = ("unit", "symmetric")
# The largest float32: inputs beyond it cannot be computed with; scores that overflow
# (inf, or NaN from inf - inf inside a network) are set to it: flagged, ranked first.
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclasses.dataclass(frozen=True)
class Fitted:
    """A trained detector: its name, config, scoring parameters (pytree), training record,
    feature count, and the final train state (parameters with optimiser state; None when
    loaded without one). With several training phases the state is ``{phase name: state}``."""

    detector: str
    config: Any
    params: Any
    result: FitResult | None
    n_features: int
    state: Any = None


def _params_attr(state):
    return state.params


@dataclasses.dataclass(frozen=True)
class Phase:
    """One training phase: a train state, a step over it, an optional validation loss.

    Attributes:
      name: the phase's name (history entries and checkpoints of later phases carry it).
      init_state: ``(cfg, train, n_features, key) -> state``; a later phase also gets
        ``previous=`` the parameters the phase before it produced.
      make_step: ``(cfg, train, n_features) -> step(state, batch, mask, key) -> (state,
        metrics)``, pure: the epoch loop scans it on the device; ``mask`` (B,) is 0 on padding
        rows (average with ``training.masked_mean``).
      make_eval: optional ``(cfg, n_features) -> eval(state, x) -> {'loss': ...}``, the
        validation loss behind early stopping.
      prepare_state: optional ``(cfg, state, x_train) -> state`` run once before training
        (e.g. statistics of the training data kept in the parameters).
      params_of: ``state -> params`` handed to the next phase or to scoring.
      train_config: optional ``(cfg, train) -> TrainConfig`` for this phase (e.g. its own
        epoch count).
      keep_state: False: the phase's state is left out of ``Fitted.state`` (and of saved
        models): a gradient-free pass whose whole result is in its parameters (a bank of
        training features would otherwise be stored twice). Not for the first phase.
    """

    name: str
    init_state: Callable[..., Any]
    make_step: Callable[..., Callable]
    make_eval: Callable[..., Callable] | None = None
    prepare_state: Callable[..., Any] | None = None
    params_of: Callable[[Any], Any] = _params_attr
    train_config: Callable[..., TrainConfig] | None = None
    keep_state: bool = True


def _default_chunk(cfg, local_n: int) -> int:
    return getattr(cfg, "score_batch", None) or 4096


@dataclasses.dataclass(frozen=True)
class Detector:
    """A detector as a bundle of pure functions (like optax's ``GradientTransformation``).

    A method supplies its config, its training phase(s) and a score written for one sample;
    ``fit`` and ``score`` below are the same for every detector.

    Attributes:
      name: registry name (``--detector``).
      description: one line for ``--help`` and the estimator's docstring.
      config_cls: frozen dataclass of the model/scoring hyperparameters; its fields become
        CLI flags and its ``Attributes:`` docstring their help.
      presets: named configs; every detector has ``'tiny'`` (used by the tests).
      phases: the training phases, run in order (most detectors have one).
      make_sample_scorer: ``(cfg, n_features) -> one(params, x, *extra) -> dict`` with
        ``'score'`` (higher = more anomalous) and optionally ``'reconstruction'``, ``'z'`` and
        other parts, for ONE sample ``x`` (D,); vmapped, chunked and sharded by ``score``.
      score_inputs: optional ``(cfg, x, key) -> tuple`` of per-sample arrays passed to ``one``
        as ``extra`` (random draws: use ``sample_keys`` so a score depends on the sample only).
      score_chunk: ``(cfg, local_n) -> rows`` per vmapped chunk on each device.
      dataset_presets: data set name -> preset name; others get ``default_preset``.
      default_preset: the preset for any other data set.
      input_range: ``'unit'`` (data in [0, 1]) or ``'symmetric'`` ([-1, 1], tanh generators).
      estimator: class name of its scikit-learn estimator (``AutoEncoder``); None: only
        ``AnomalyDetector(name)``.
      extra_plots: optional ``(fitted, plots_dir, image_shape, *, key) -> None``.
      fit_params: a method fitted in closed form instead of by training phases (the
        baselines: kNN keeps the training rows, Isolation Forest its trees):
        ``(cfg, x_train, key) -> params``, the scoring parameters (a pytree of arrays).
        Such a detector has no phases, no train state and no model axis.
    """

    name: str
    description: str
    config_cls: type
    presets: Mapping[str, Any]
    phases: tuple[Phase, ...]
    make_sample_scorer: Callable[..., Callable]
    score_inputs: Callable[..., tuple] | None = None
    score_chunk: Callable[[Any, int], int] = _default_chunk
    dataset_presets: Mapping[str, str] = dataclasses.field(default_factory=dict)
    default_preset: str = "default"
    input_range: str = "unit"
    estimator: str | None = None
    extra_plots: Callable[..., None] | None = None
    fit_params: Callable[..., Any] | None = None

    def __post_init__(self):
        if "tiny" not in self.presets:
            raise ValueError(f"detector '{self.name}' needs a 'tiny' preset for the tests")
        missing = {self.default_preset, *self.dataset_presets.values()} - set(self.presets)
        if missing:
            raise ValueError(f"detector '{self.name}' names presets it does not have: {sorted(missing)}")
        if self.input_range not in INPUT_RANGES:
            raise ValueError(f"input_range must be one of {INPUT_RANGES}, got '{self.input_range}'")
        if self.phases and not self.phases[0].keep_state:
            raise ValueError(f"detector '{self.name}': the first phase must keep its state (keep_state)")
        if bool(self.phases) == (self.fit_params is not None):
            raise ValueError(
                f"detector '{self.name}' needs training phases or a closed-form fit_params (one of them)"
            )

    # ---- configuration and input range ----------------------------------------------

    @property
    def trains(self) -> bool:
        """Whether the method trains by gradient steps (phases), not in closed form."""
        return self.fit_params is None

    @property
    def needs_every_row(self) -> bool:
        """A phase sets its state from statistics of the training data (``prepare_state``: the
        AAE's input standardisation), so each process must train on every row, not a share."""
        return any(phase.prepare_state for phase in self.phases)

    def config(self, preset: str | None = None, dataset: str = "", **overrides):
        """The preset's config (by name, or the one for ``dataset``) with ``overrides``."""
        name = preset or self.dataset_presets.get(dataset, self.default_preset)
        if name not in self.presets:
            raise ValueError(
                f"detector '{self.name}' has no preset '{name}'; presets: {sorted(self.presets)}"
            )
        return replace(self.presets[name], **overrides)

    def to_input(self, x: np.ndarray) -> np.ndarray:
        """Data in [0, 1] -> the detector's input range."""
        return 2.0 * x - 1.0 if self.input_range == "symmetric" else x

    def from_input(self, x: np.ndarray) -> np.ndarray:
        """The detector's input range (e.g. a reconstruction) -> [0, 1]."""
        return (x + 1.0) / 2.0 if self.input_range == "symmetric" else x

    # ---- training -------------------------------------------------------------------

    def _phase_keys(self, key):
        return [key] if len(self.phases) == 1 else list(jax.random.split(key, len(self.phases)))

    def _packed(self, states: dict):
        """The train state as ``Fitted.state`` holds it: one phase's state, or ``{phase: state}``
        (the phases that keep theirs)."""
        if len(self.phases) == 1:
            return states[self.phases[0].name]
        return {p.name: states[p.name] for p in self.phases if p.keep_state}

    def phase_states(self, state) -> dict:
        """``{phase name: state}`` of a ``Fitted.state`` (undoes ``_packed``)."""
        return {self.phases[0].name: state} if len(self.phases) == 1 else state

    def init_state(self, cfg, train: TrainConfig, n_features: int, key):
        """A freshly initialised train state (``{phase: state}`` with several phases); the
        template a saved model's state is restored into."""
        states, previous = {}, None
        for i, (phase, k) in enumerate(zip(self.phases, self._phase_keys(key), strict=True)):
            extra = {} if i == 0 else {"previous": previous}
            states[phase.name] = phase.init_state(
                cfg, _phase_train(phase, cfg, train), n_features, k, **extra
            )
            if i + 1 < len(self.phases):  # the next phase starts from these parameters
                previous = phase.params_of(states[phase.name])
        return self._packed(states)

    def fit(self, cfg, train: TrainConfig, x_train, x_val=None, *, key, progress=True) -> Fitted:
        """Trains on normal data ``x_train`` (N, D) in the detector's input range; the
        validation loss on ``x_val`` (when the method has one) is reported every epoch and
        drives early stopping when ``train.patience`` is set.

        Raises:
          ValueError: bad data (see ``check_features``) or settings.
          TrainingDivergedError: a NaN/inf loss (names the epoch; keeps the last good state).
        """
        x_train, x_val = check_fit_data(x_train, x_val)
        return self.fit_checked(cfg, train, x_train, x_val, key=key, progress=progress)

    def fit_checked(
        self, cfg, train: TrainConfig, x_train, x_val, *, key, progress=True, total_rows: int | None = None
    ) -> Fitted:
        """``fit`` for data already checked (float32, finite, (N, D); ``x_val`` None or checked).
        ``total_rows``: ``x_train`` is this process's share of that many rows (``fit_loop``)."""
        if total_rows is not None and self.needs_every_row:
            raise ValueError(
                f"detector '{self.name}' sets its state from statistics of the training data: "
                "it trains on every row in each process, not on a share"
            )
        n_features = x_train.shape[1]
        if not self.trains:
            t0 = time.perf_counter()
            params = jax.block_until_ready(self.fit_params(cfg, x_train, key))
            result = FitResult(
                history=[],
                compile_seconds=0.0,
                train_seconds=time.perf_counter() - t0,
                best_epoch=0,
                stopped_early=False,
            )
            return Fitted(self.name, cfg, params, result, n_features, state=None)
        keys = self._phase_keys(key)
        states, results, previous = {}, [], None
        for i, phase in enumerate(self.phases):
            phase_train = phase_train_config(phase, i, cfg, train)
            extra = {} if i == 0 else {"previous": previous}

            def init(k, phase=phase, phase_train=phase_train, extra=extra):
                state = phase.init_state(cfg, phase_train, n_features, k, **extra)
                return phase.prepare_state(cfg, state, x_train) if phase.prepare_state else state

            state, result = train_phase(
                self.name,
                init,
                phase.make_step(cfg, phase_train, n_features),
                x_train,
                phase_train,
                key=keys[i],
                eval_fn=phase.make_eval(cfg, n_features) if phase.make_eval else None,
                val_data=x_val,
                progress=progress,
                total_rows=total_rows,
            )
            states[phase.name], previous = state, phase.params_of(state)
            results.append((phase.name, result))
        return Fitted(
            self.name, cfg, previous, merge_results(results), n_features, state=self._packed(states)
        )

    # ---- scoring --------------------------------------------------------------------

    def score(
        self, fitted: Fitted, x, *, key=None, devices: int | None = None, progress: bool | Progress = False
    ) -> dict[str, np.ndarray]:
        """Scores every row of ``x`` (N, D) (the detector's input range), compiled once per
        shape, the rows sharded over the first ``devices`` devices (None: all).

        With ``progress`` (True, or a ``Progress``) the rows go through the compiled scorer
        one chunk per device at a time (the chunks its ``lax.map`` would take in one call), so
        a progress line with rate and ETA moves between the calls.

        Returns:
          the sample scorer's dict stacked over rows, as NumPy arrays: ``score`` (N,),
          higher = more anomalous (a score that overflows float32 is set to its largest
          value: ``saturate``), and the method's other parts.

        Raises:
          ValueError: bad data, or no ``key`` for a method that draws random numbers.
        """
        x = check_features(x, fitted.n_features)
        return self.score_checked(fitted, x, key=key, devices=devices, progress=progress)

    def score_checked(
        self, fitted: Fitted, x: np.ndarray, *, key=None, devices=None, progress: bool | Progress = False
    ) -> dict:
        """``score`` for data already checked."""
        extra = ()
        if self.score_inputs is not None:
            if key is None:
                raise ValueError(f"detector '{self.name}' needs a PRNG key to score (its random draws)")
            extra = self.score_inputs(fitted.config, x, key)
        mesh = make_mesh(devices)
        cfg, n = fitted.config, len(x)
        if not progress and x.nbytes <= SCORE_BYTES:
            scorer = self.sharded_scorer(cfg, fitted.n_features, n, mesh)
            out = map_samples(scorer, mesh, fitted.params, x, *extra)
            return {**out, "score": saturate(out["score"])}
        if not progress:  # a large host set (a memory map): chunk by chunk, no line
            progress = Progress(n, "score", enabled=False)
        bar = progress if isinstance(progress, Progress) else Progress(n, "score", unit="samples")
        # One call per lax.map chunk of each device: the vmap width the single call uses (its
        # last, shorter chunk aside), so only the last call is padded.
        local_n = local_rows(n, mesh)
        rows = min(self.score_chunk(cfg, local_n), local_n) * mesh.devices.size
        scorer = self.sharded_scorer(cfg, fitted.n_features, rows, mesh)
        params = replicate(fitted.params, mesh)  # once: the calls below find them in place
        outs = []
        bar.update(0)
        for start in range(0, n, rows):
            part = [pad_to(np.asarray(a)[start : start + rows], rows) for a in (x, *extra)]
            outs.append(map_samples(scorer, mesh, params, *part))
            bar.update(min(start + rows, n))
        bar.close()
        out = jax.tree.map(lambda *parts: np.concatenate(parts)[:n], *outs)
        return {**out, "score": saturate(out["score"])}

    def sharded_scorer(self, cfg, n_features: int, n: int, mesh):
        """The compiled ``(params, x, *extra) -> dict`` for ``n`` rows over ``mesh`` (cached)."""
        local_n = local_rows(n, mesh)
        chunk = min(self.score_chunk(cfg, local_n), local_n)
        return sample_scorer(self.make_sample_scorer, cfg, n_features, chunk, mesh)


def _phase_train(phase: Phase, cfg, train: TrainConfig) -> TrainConfig:
    return phase.train_config(cfg, train) if phase.train_config else train


def phase_train_config(phase: Phase, index: int, cfg, train: TrainConfig) -> TrainConfig:
    """The training settings of the ``index``-th phase: its own (``Phase.train_config``), and
    for a later phase the checkpoint beside the first one's (``CHECKPOINT.<phase name>``),
    resumed only where that file exists."""
    phase_train = _phase_train(phase, cfg, train)
    if index > 0 and train.checkpoint:
        path = f"{train.checkpoint}.{phase.name}"
        phase_train = dataclasses.replace(
            phase_train, checkpoint=path, resume=bool(train.resume and os.path.exists(path))
        )
    return phase_train


@functools.lru_cache(maxsize=64)
def sample_scorer(make_sample_scorer: Callable, cfg, n_features: int, chunk: int, mesh=None):
    """``make_sample_scorer(cfg, n_features)``'s per-sample function vmapped over chunks of
    ``chunk`` rows (``lax.map``) and sharded by rows over ``mesh`` (None: all devices);
    jitted and cached per arguments. Rows must divide by the mesh size (``map_samples``
    pads them)."""
    one = make_sample_scorer(cfg, n_features)

    def local(params, *xs):
        return jax.lax.map(lambda row: one(params, *row), xs, batch_size=chunk)

    return shard_samples(local, mesh or make_mesh())


def merge_results(results: list[tuple[str, FitResult]]) -> FitResult:
    """One ``FitResult`` of several phases: epochs numbered on, each entry tagged with its
    phase, the metrics of phases after the first prefixed with the phase name."""
    if len(results) == 1:
        return results[0][1]
    history, offset = [], 0
    for i, (name, r) in enumerate(results):
        for h in r.history:
            metrics = {k if i == 0 else f"{name}_{k}": v for k, v in h.items() if k != "epoch"}
            history.append({"epoch": offset + h["epoch"], "phase": name, **metrics})
        offset += len(r.history)
    last = results[-1][1]
    return FitResult(
        history=history,
        compile_seconds=sum(r.compile_seconds for _, r in results),
        train_seconds=sum(r.train_seconds for _, r in results),
        best_epoch=offset - len(last.history) + last.best_epoch,
        stopped_early=last.stopped_early,
    )


def train_phase(
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
    total_rows: int | None = None,
):
    """Initialises a state with ``init_state(key)`` and trains it with the on-device epoch
    loop under ``train``. Returns ``(state, FitResult)``. ``eval_fn`` (the validation loss)
    is used only when ``val_data`` is given; ``total_rows`` as in ``fit_loop``.

    Raises:
      ValueError: early stopping asked for (``train.patience``) without a validation loss.
    """
    if val_data is None:
        eval_fn = None
    if train.patience is not None and eval_fn is None:
        raise ValueError(
            f"early stopping (patience) needs a validation loss: detector '{name}' has none here "
            "(no validation data, or a method without one)"
        )
    init_key, train_key = jax.random.split(key)
    return fit_loop(
        init_state(init_key),
        step,
        x_train,
        train,
        key=train_key,
        eval_fn=eval_fn,
        val_data=val_data,
        progress=progress,
        total_rows=total_rows,
    )


def adam(train: TrainConfig, default_b1: float = 0.9):
    """The optax Adam every detector uses; ``train.b1`` when set, else ``default_b1``. Its
    rate and betas live in the optimiser state (``optax.inject_hyperparams``), so models of a
    stack can train with different ones in one program (``detectors.stack``)."""
    b1 = default_b1 if train.b1 is None else train.b1
    return optax.inject_hyperparams(optax.adam)(learning_rate=train.learning_rate, b1=b1, b2=train.b2)


# ---- input checks -------------------------------------------------------------------------


# Host data is checked this many bytes at a time, and scored in chunks past SCORE_BYTES, so a
# memory-mapped set is never read into memory whole (float32 data is not copied either).
CHECK_BYTES = 1 << 26
SCORE_BYTES = 1 << 30


def host_parts(x: np.ndarray):
    """``x``'s rows in successive parts of at most ``CHECK_BYTES`` (at least one row each): a
    memory-mapped set is read a part at a time."""
    rows = max(1, CHECK_BYTES // max(1, x[:1].nbytes))
    for start in range(0, len(x), rows):
        yield x[start : start + rows]


def check_features(x, n_features: int | None = None, what: str = "x") -> np.ndarray:
    """Validates a data matrix at a public boundary: numeric, rank 2, non-empty, finite, and
    (when given) ``n_features`` columns. Returns it as float32 (float32 data itself, a memory
    map included: not copied)."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{what} must be numeric, got dtype {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{what} must have shape (N, D), got shape {x.shape}")
    if len(x) == 0:
        raise ValueError(f"{what} is empty")
    if n_features is not None and x.shape[1] != n_features:
        raise ValueError(f"{what} has {x.shape[1]} features; the detector was fitted on {n_features}")
    for part in host_parts(x):
        if not np.all(np.isfinite(part)):
            raise ValueError(f"{what} contains NaN or inf values")
        check_float32_range(part, what)
    return x.astype(np.float32, copy=False)


def check_float32_range(x: np.ndarray, what: str = "x") -> None:
    """Raises ``ValueError`` when finite values of ``x`` lie beyond float32's range, in which
    the detectors compute (they would become inf)."""
    largest = float(np.max(np.abs(x))) if x.size else 0.0
    if largest > FLOAT32_MAX:
        raise ValueError(
            f"{what} holds values up to {largest:.3g}, beyond float32's range (3.4e38) in which the "
            "detectors compute; rescale the data (e.g. MinMaxScaler)"
        )


def saturate(scores: np.ndarray) -> np.ndarray:
    """Scores with overflow (inf, or NaN from inf - inf inside a network; the inputs are
    finite) set to the largest float32: an extreme sample is flagged and ranked first, tied
    with any other that overflows, instead of ending the run."""
    return np.nan_to_num(np.asarray(scores), nan=FLOAT32_MAX, posinf=FLOAT32_MAX, neginf=-FLOAT32_MAX)


def check_fit_data(x_train, x_val=None) -> tuple[np.ndarray, np.ndarray | None]:
    """``fit``'s data checks: ``x_train`` as in ``check_features``; ``x_val`` the same with
    the training feature count, or None when absent or empty (no validation loss then)."""
    x_train = check_features(x_train, what="training data")
    if x_val is None or len(x_val) == 0:
        return x_train, None
    return x_train, check_features(x_val, x_train.shape[1], what="validation data")


def sample_keys(key, x):
    """One PRNG key per row of ``x``: ``key`` folded with a 32-bit hash of the row's bytes.

    Random draws made with these keys (AnoGAN's initial latents, Monte-Carlo samples) make a
    sample's score a function of the sample alone: the same row gets the same draw in any
    batch, at any position. Traceable (``x`` may be a traced array of symbolic batch size:
    the exported scorers compute it in their graph).
    """
    x = jnp.asarray(x, jnp.float32)
    d = math.prod(x.shape[1:])
    rows = jax.lax.bitcast_convert_type(x.reshape((x.shape[0], d)), jnp.uint32)
    weights = np.random.default_rng(0x5EED).integers(1, 2**32, size=d, dtype=np.uint64) | 1
    hashes = jnp.sum(rows * jnp.asarray(weights.astype(np.uint32)), axis=1, dtype=jnp.uint32)  # mod 2**32
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, hashes)


def per_sample_normal(key, x: np.ndarray, shape: tuple[int, ...]) -> jax.Array:
    """N(0, I) draws of ``shape`` for each row of ``x``: ``(N, *shape)``, each row's from
    ``sample_keys`` (so a sample's draw, and its score, depend on the sample alone). A host
    set over ``CHECK_BYTES`` (a memory map) is hashed a part at a time, never whole on the
    device; the draws are the same."""
    if isinstance(x, np.ndarray) and x.nbytes > CHECK_BYTES:
        return np.concatenate([np.asarray(per_sample_normal(key, part, shape)) for part in host_parts(x)])
    return jax.vmap(lambda k: jax.random.normal(k, shape))(sample_keys(key, x))


# ---- the registry -------------------------------------------------------------------------

_REGISTRY: dict[str, Detector] = {}
ENTRY_POINT_GROUP = "jax_anomaly.detectors"


def register(detector: Detector) -> Detector:
    """Adds a detector to the registry: from then on it is ``--detector NAME``, an estimator
    (``AnomalyDetector(NAME)``, and the class ``detector.estimator`` names) and a CLI with its
    config's fields as flags. A new method is one file calling this."""
    _REGISTRY[detector.name] = detector
    return detector


@functools.cache
def _load_entry_points() -> None:
    """Imports the detectors that installed packages declare under the entry-point group
    ``jax_anomaly.detectors`` (each module registers itself on import)."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()


def load_plugin(module: str) -> None:
    """Imports ``module`` (a dotted module name, or a path to a ``.py`` file) so that the
    detectors it registers are available.

    Raises:
      ValueError: the module cannot be found or fails to import.
    """
    try:
        if module.endswith(".py"):
            path = Path(module)
            if not path.is_file():
                raise ValueError(f"plugin file not found: {module}")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = mod
            spec.loader.exec_module(mod)
        else:
            importlib.import_module(module)
    except ImportError as e:
        raise ValueError(f"cannot import plugin '{module}': {e}") from None


def registry() -> Mapping[str, Detector]:
    """Every registered detector by name (the package's, plugins' and entry points')."""
    _load_entry_points()
    return _REGISTRY


def get_detector(name: str) -> Detector:
    """The registered detector called ``name``."""
    try:
        return registry()[name]
    except KeyError:
        raise ValueError(f"unknown detector '{name}'; expected one of {sorted(_REGISTRY)}") from None


def detector_names() -> list[str]:
    return sorted(registry())
