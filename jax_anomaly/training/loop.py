"""The on-device epoch loop: seeded permutation -> (steps, batch) index rows -> ``lax.scan``
over a jitted step; the Python loop over epochs only logs, checks and early-stops."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from jax_anomaly import persistence
from jax_anomaly.config import TrainConfig
from jax_anomaly.data.sources import host_rows
from jax_anomaly.sharding import (
    AXIS,
    constrain_rows,
    make_mesh,
    padded_size,
    place_shards,
    process_share,
    replicate,
    train_devices,
)
from jax_anomaly.training.progress import Progress

# step(state, batch, mask, key) -> (state, metrics); mask is 1.0 for real rows, 0.0 for padding.
Step = Callable[[Any, jax.Array, jax.Array, jax.Array], tuple[Any, dict]]


class TrainingDivergedError(RuntimeError):
    """A loss became NaN or inf. ``last_good_state`` holds the state after the last finite epoch."""

    def __init__(self, message: str, last_good_state: Any, history: list[dict]):
        super().__init__(message)
        self.last_good_state = last_good_state
        self.history = history


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of ``values`` (B,) over rows where ``mask`` (B,) is 1; padding rows do not count."""
    return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


# The default training length (``TrainConfig.epochs=None``): at least this many optimiser
# steps and epochs. A fixed epoch count fails small data sets: 20 epochs of 540 samples at
# batch 128 are 100 steps, which left an autoencoder worse than random on PyOD's benchmark data.
MIN_STEPS, MIN_EPOCHS = 2000, 20


def auto_epochs(n: int, batch_size: int, drop_remainder: bool = False) -> int:
    """Epochs of the default training length for ``n`` samples: at least ``MIN_STEPS`` steps
    and ``MIN_EPOCHS`` epochs."""
    return max(MIN_EPOCHS, math.ceil(MIN_STEPS / steps_per_epoch(n, min(batch_size, n), drop_remainder)))


def steps_per_epoch(n: int, batch_size: int, drop_remainder: bool = False) -> int:
    """Number of steps in one epoch of ``n`` samples."""
    return n // batch_size if drop_remainder else math.ceil(n / batch_size)


def epoch_batches(
    key: jax.Array, n: int, batch_size: int, drop_remainder: bool = False, multiple: int = 1
) -> tuple[jax.Array, jax.Array]:
    """Index rows of one epoch: a seeded permutation of ``range(n)`` cut into batches.

    Without ``drop_remainder`` the last batch is padded with index 0 and mask 0, so no
    sample is dropped and every batch has the same shape (one compiled step). With
    ``multiple`` > 1 (the device count) every batch is padded the same way to a multiple of
    it, so it splits evenly over devices; the masked loss is unchanged.

    Returns:
      ``(idx, mask)``, both ``(steps, padded_size(batch_size, multiple))``; idx int32, mask float32.
    """
    steps = steps_per_epoch(n, batch_size, drop_remainder)
    perm = jax.random.permutation(key, n).astype(jnp.int32)
    total = steps * batch_size
    mask = (jnp.arange(total) < n).astype(jnp.float32).reshape(steps, batch_size)
    idx = jnp.zeros(total, jnp.int32).at[: min(n, total)].set(perm[:total]).reshape(steps, batch_size)
    extra = padded_size(batch_size, multiple) - batch_size
    if extra:
        idx = jnp.pad(idx, ((0, 0), (0, extra)))
        mask = jnp.pad(mask, ((0, 0), (0, extra)))
    return idx, mask


def shard_batches(
    key: jax.Array, counts: list[int], size: int, batch_size: int, drop_remainder: bool = False
) -> tuple[jax.Array, jax.Array]:
    """Index rows of one epoch over devices that each hold their own shard of ``size`` rows
    (``counts[d]`` of them real, ``sharding.device_shards``): every device permutes its own
    real rows (its own key) and takes ``ceil(batch_size / devices)`` of them per step.

    Returns:
      ``(idx, mask)``, both ``(steps, devices * local_batch)``: device d's columns are
      ``[d * local_batch, (d + 1) * local_batch)`` and its indices point into its own shard.
      Steps run until the largest shard is used up (``drop_remainder``: while the smallest
      fills a whole local batch); a shard used up earlier pads with mask 0.
    """
    devices = len(counts)
    local = -(-batch_size // devices)
    steps = (min(counts) // local) if drop_remainder else -(-max(counts) // local)
    total = steps * local

    def one(k, count):
        perm = jax.random.permutation(k, size).astype(jnp.int32)
        perm = perm[jnp.argsort(perm >= count, stable=True)]  # this shard's real rows first
        flat = jnp.zeros(max(total, size), jnp.int32).at[:size].set(perm)[:total]
        real = jnp.arange(total) < count
        return (flat * real).reshape(steps, local), real.astype(jnp.float32).reshape(steps, local)

    idx, mask = jax.vmap(one)(jax.random.split(key, devices), jnp.asarray(counts))
    return (a.transpose(1, 0, 2).reshape(steps, devices * local) for a in (idx, mask))


def make_epoch_fn(
    step: Step,
    *,
    n: int,
    batch_size: int,
    drop_remainder: bool = False,
    unroll: int = 1,
    mesh: Mesh | None = None,
    shard_counts: list[int] | None = None,
) -> Callable:
    """Builds ``epoch(state, data, key) -> (state, metrics)``, one ``lax.scan`` over the steps.

    ``data`` is an array (or pytree of arrays) with ``n`` rows that stays on the device; each
    step gathers its batch by index. The per-step key is ``fold_in(key, step_index)``.
    Metrics are averaged over the epoch weighted by the number of real rows per batch.
    With a ``mesh``, each batch (padded to a multiple of its size) is split over its
    ``'data'`` axis and the compiler averages gradients across devices. With
    ``shard_counts`` (one per device of ``mesh``) ``data`` is split by rows over the devices
    instead (``sharding.place_shards``): each device gathers its part of every batch from its
    own shard (``shard_batches``), so no device holds the whole data set.
    The returned function is not jitted; ``fit`` compiles it once.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if steps_per_epoch(n, batch_size, drop_remainder) < 1:
        raise ValueError(f"batch_size {batch_size} with drop_remainder leaves no full batch of {n} samples")
    multiple = 1 if mesh is None else mesh.devices.size
    if shard_counts is not None:
        size = max(1, max(shard_counts))
        if drop_remainder and min(shard_counts) < -(-batch_size // len(shard_counts)):
            raise ValueError(
                f"batch_size {batch_size} with drop_remainder leaves a device without a full batch "
                f"(its shard holds {min(shard_counts)} of the {n} samples)"
            )

        def gather(data, rows):
            return jax.shard_map(
                lambda local, i: jax.tree.map(lambda a: jnp.take(a, i, axis=0), local),
                mesh=mesh,
                in_specs=(P(AXIS), P(AXIS)),
                out_specs=P(AXIS),
            )(data, rows)

    def epoch(state, data, key):
        perm_key, step_key = jax.random.split(key)
        if shard_counts is None:
            idx, mask = epoch_batches(perm_key, n, batch_size, drop_remainder, multiple)
        else:
            idx, mask = shard_batches(perm_key, shard_counts, size, batch_size, drop_remainder)

        def body(state, inputs):
            i, rows, row_mask = inputs
            if shard_counts is not None:
                batch = gather(data, rows)
            else:
                batch = jax.tree.map(lambda a: jnp.take(a, rows, axis=0), data)
            if mesh is not None:
                batch, row_mask = constrain_rows((batch, row_mask), mesh)
            return step(state, batch, row_mask, jax.random.fold_in(step_key, i))

        steps = jnp.arange(idx.shape[0])
        state, metrics = jax.lax.scan(body, state, (steps, idx, mask), unroll=unroll)
        weights = mask.sum(axis=1)
        return state, jax.tree.map(lambda m: jnp.sum(m * weights) / jnp.sum(weights), metrics)

    return epoch


class StreamedEpochs:
    """The epoch of ``make_epoch_fn`` with the data on the host: the same seeded batches,
    gathered on the host and sent to the device ``steps`` batches at a time, each chunk one
    compiled ``lax.scan``; the per-step keys are the on-device epoch's (its global step
    index), so the result equals it. ``run(state, data, val_data, key) -> (state, metrics)``;
    ``compile_seconds`` adds up the compilations (one per chunk length: at most two, and the
    validation function)."""

    def __init__(
        self, step: Step, *, n: int, batch_size: int, drop_remainder: bool, unroll: int, rows: int, eval_fn
    ):
        self.n, self.batch_size, self.drop_remainder = n, batch_size, drop_remainder
        self.steps = max(1, rows // batch_size)
        self.compile_seconds, self._compiled = 0.0, {}  # by chunk length, and "eval"

        def chunk(state, batches, mask, first, step_key):
            def body(state, inputs):
                i, batch, row_mask = inputs
                return step(state, batch, row_mask, jax.random.fold_in(step_key, i))

            steps = first + jnp.arange(mask.shape[0])
            state, metrics = jax.lax.scan(body, state, (steps, batches, mask), unroll=unroll)
            weights = mask.sum(axis=1)
            return state, jax.tree.map(lambda m: jnp.sum(m * weights), metrics), jnp.sum(weights)

        self._chunk = jax.jit(chunk)
        self._eval = None if eval_fn is None else jax.jit(eval_fn)

    def _compile(self, name, fn, *args):
        """``fn`` compiled for ``args`` once per ``name`` (the state's shapes never change)."""
        if name not in self._compiled:
            t0 = time.perf_counter()
            self._compiled[name] = fn.lower(*args).compile()
            self.compile_seconds += time.perf_counter() - t0
        return self._compiled[name]

    def run(self, state, data, val_data, key):
        perm_key, step_key = jax.random.split(key)
        idx, mask = (
            np.asarray(a) for a in epoch_batches(perm_key, self.n, self.batch_size, self.drop_remainder)
        )
        totals, weight = None, 0.0
        for first in range(0, len(idx), self.steps):
            rows = idx[first : first + self.steps]
            batches = jax.tree.map(
                lambda a, rows=rows: host_rows(a, rows.ravel()).reshape(rows.shape + a.shape[1:]), data
            )
            args = (
                state,
                jax.device_put(batches),
                jnp.asarray(mask[first : first + self.steps]),
                jnp.int32(first),
                step_key,
            )
            state, sums, w = self._compile(len(rows), self._chunk, *args)(*args)
            totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
            weight = weight + w
        metrics = jax.tree.map(lambda t: t / weight, totals)
        if self._eval is not None:
            evaluate = self._compile("eval", self._eval, state, val_data)
            metrics.update({f"val_{k}": v for k, v in evaluate(state, val_data).items()})
        return state, metrics


def key_list(key) -> list:
    """A PRNG key (typed or raw) as nested lists: how checkpoints record the key they need."""
    return np.asarray(
        jax.random.key_data(key) if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    ).tolist()


def load_matching_checkpoint(path, template, settings: dict, hint: str) -> tuple[Any, Any, dict]:
    """``persistence.load_checkpoint`` for a resume: ``(state, best_state, meta)``.

    Raises:
      ValueError: besides a missing or corrupt file, a checkpoint whose recorded settings
        differ from ``settings`` (names them; ``hint`` says what to do).
    """
    state, best, meta = persistence.load_checkpoint(path, template)
    changed = sorted(k for k, v in settings.items() if meta.get("settings", {}).get(k) != v)
    if changed:
        raise ValueError(
            f"checkpoint {path} was written with other data or settings ({', '.join(changed)}); {hint}"
        )
    return state, best, meta


@dataclasses.dataclass
class FitResult:
    """What ``fit`` returns beside the state: per-epoch metrics and timings (seconds)."""

    history: list[dict]
    compile_seconds: float
    train_seconds: float
    best_epoch: int
    stopped_early: bool


def fit_loop(
    state: Any,
    step: Step,
    data: Any,
    train: TrainConfig,
    *,
    key: jax.Array,
    eval_fn: Callable[[Any, Any], dict] | None = None,
    val_data: Any = None,
    monitor: str = "val_loss",
    progress: bool | Progress = True,
    total_rows: int | None = None,
) -> tuple[Any, FitResult]:
    """Trains for ``train.epochs`` epochs, each one compiled ``lax.scan`` over the data.

    Args:
      state: initial train state (any pytree, e.g. flax ``TrainState``).
      step: ``(state, batch, mask, key) -> (state, metrics)``.
      data: training array ``(N, ...)`` or pytree of such arrays.
      train: the loop's settings (``TrainConfig``): ``epochs`` (None: ``auto_epochs``);
        ``batch_size`` (clamped to
        N); ``patience`` (early stopping on ``monitor``, returning the best state);
        ``drop_remainder``; ``unroll`` (of the scan); ``devices`` (data-parallel over the first
        N devices; None: all visible, but one on a single-host CPU, see
        ``sharding.train_devices``); ``checkpoint`` (a file written every
        ``checkpoint_every`` epochs and at the end, atomically: a crash mid-write keeps the
        previous one, and divergence leaves the last good one) and ``resume`` (continue from
        it with the same data and settings: the result equals an uninterrupted run with the
        same key, bit for bit on the same machine).
      key: PRNG key; epoch ``e`` uses ``fold_in(key, e)``.
      eval_fn: optional ``(state, val_data) -> metrics`` run on the device after each epoch;
        its metrics are reported with a ``val_`` prefix.
      val_data: validation data passed to ``eval_fn``.
      monitor: metric for early stopping (default ``val_loss``).
      progress: show a progress line (or pass a ``Progress``).
      total_rows: ``data`` holds only this process's ``sharding.process_share`` of
        ``total_rows`` training rows (a multi-process run, each process reading its own
        share); None: ``data`` is all of them. With several devices each device holds its own
        shard either way (``sharding.device_shards``).

    Returns:
      ``(state, FitResult)``.

    Raises:
      TrainingDivergedError: a NaN/inf metric; names the epoch and keeps the last good state.
      ValueError: bad arguments; with ``resume``, a missing or corrupt checkpoint or one
        written for other data or settings.
    """
    patience, checkpoint, resume = train.patience, train.checkpoint, train.resume
    drop_remainder, checkpoint_every = train.drop_remainder, train.checkpoint_every or 1
    local = len(jax.tree.leaves(data)[0])
    n = local if total_rows is None else int(total_rows)
    if total_rows is not None and local != (mine := len(range(n)[process_share(n)])):
        raise ValueError(f"this process holds {local} training rows; its share of {n} is {mine}")
    if n < 1:
        raise ValueError("no training data")
    if patience is not None and (patience < 1 or eval_fn is None):
        raise ValueError("early stopping needs patience >= 1 and validation data")
    if resume and checkpoint is None:
        raise ValueError("resume needs a checkpoint file")
    batch_size = min(train.batch_size, n)
    epochs = train.epochs or auto_epochs(n, batch_size, drop_remainder)
    mesh = make_mesh(train_devices(train.devices))
    if train.stream_rows is not None and (mesh.devices.size > 1 or jax.process_count() > 1):
        raise ValueError(
            "stream_rows trains on one device in one process: leave it unset to train over "
            f"{mesh.devices.size} devices in {jax.process_count()} processes"
        )
    counts = None
    if mesh.devices.size > 1:  # each device holds its own shard of the rows
        data, counts = place_shards(data, n, mesh, local=total_rows is not None)
    elif jax.process_count() > 1:
        raise ValueError("a multi-process run trains over the devices of every process (devices > 1)")
    batches = {"n": n, "batch_size": batch_size, "drop_remainder": drop_remainder, "unroll": train.unroll}
    epoch_fn = make_epoch_fn(step, mesh=mesh, shard_counts=counts, **batches)

    def epoch_and_eval(state, data, val_data, key):
        state, metrics = epoch_fn(state, data, key)
        if eval_fn is not None:
            metrics.update({f"val_{k}": v for k, v in eval_fn(state, val_data).items()})
        return state, metrics

    # What a checkpoint must match to be resumed (the key's data included: same seed).
    settings = {
        "n": n,
        "batch_size": batch_size,
        "drop_remainder": drop_remainder,
        "patience": patience,
        "monitor": monitor,
        "key": key_list(key),
    }
    history: list[dict] = []
    best_value, best_epoch, best_state, stopped_early, start = np.inf, 0, state, False, 1
    if resume:
        state, saved_best, meta = load_matching_checkpoint(
            checkpoint, state, settings, "resume with the same command and seed, or start without resume"
        )
        history, best_epoch, stopped_early = meta["history"], meta["best_epoch"], meta["stopped_early"]
        best_value = np.inf if meta["best_value"] is None else meta["best_value"]
        best_state = saved_best if saved_best is not None else state
        start = meta["epoch"] + 1
    state, val_data = replicate((state, val_data), mesh)
    if train.stream_rows is not None:  # the data stays on the host
        streamed = StreamedEpochs(step, rows=train.stream_rows, eval_fn=eval_fn, **batches)
        compiled = streamed.run
    else:
        if counts is None:
            data = replicate(data, mesh)
        t0 = time.perf_counter()
        compiled = jax.jit(epoch_and_eval).lower(state, data, val_data, key).compile()
        compile_seconds = time.perf_counter() - t0

    def save(epoch):
        meta = {
            "epoch": epoch,
            "epochs": epochs,
            "settings": settings,
            "history": history,
            "best_value": None if not np.isfinite(best_value) else float(best_value),
            "best_epoch": best_epoch,
            "stopped_early": stopped_early,
        }
        persistence.save_checkpoint(
            checkpoint, state=state, meta=meta, best_state=best_state if patience is not None else None
        )

    bar = progress if isinstance(progress, Progress) else Progress(epochs, "train", enabled=progress)
    train_seconds = 0.0
    for epoch in range(start, epochs + 1):
        if stopped_early:
            break
        t0 = time.perf_counter()
        new_state, metrics = compiled(state, data, val_data, jax.random.fold_in(key, epoch))
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        seconds = time.perf_counter() - t0
        train_seconds += seconds
        bad = [k for k, v in metrics.items() if not math.isfinite(v)]
        if bad:
            bar.close()
            kept = f"; the last checkpoint ({checkpoint}) is kept" if checkpoint else ""
            raise TrainingDivergedError(
                f"training diverged at epoch {epoch}: {', '.join(bad)} is NaN/inf "
                f"(try a lower learning rate); the last good state is from epoch {epoch - 1}{kept}",
                last_good_state=state,
                history=history,
            )
        state = new_state
        history.append({"epoch": epoch, **metrics, "seconds": seconds})
        bar.update(epoch, metrics)
        value = metrics.get(monitor, metrics.get("loss", np.nan))
        if value < best_value:
            best_value, best_epoch, best_state = value, epoch, state
        elif patience is not None and epoch - best_epoch >= patience:
            stopped_early = True
        due = epoch % checkpoint_every == 0 or epoch == epochs or stopped_early
        if checkpoint is not None and due:  # persistence writes on one process only
            save(epoch)
    bar.close()
    if train.stream_rows is not None:  # compiled on the first epoch: not training time
        compile_seconds = streamed.compile_seconds
        train_seconds -= compile_seconds
    if patience is not None:
        state = best_state
    else:
        best_epoch = len(history)
    return state, FitResult(history, compile_seconds, train_seconds, best_epoch, stopped_early)
