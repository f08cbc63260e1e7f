"""Many models as one compiled program: K train states stacked on a leading model axis, one
``vmap``ped step inside the scanned epoch, each model with its own key, data, epoch count,
hyperparameters, early stopping and divergence.

Layout of the model axis: models are vmapped in groups of ``group`` and the groups run one
after another inside the same program (``lax.map``); with several devices the model axis is
split over them (``shard_map``: each device trains its own models, no gradient all-reduce).
Model k ends with the state that ``fit_loop`` gives it alone with its key and data (the same
permutations, step keys and epoch count), up to float reassociation of the batched products.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jax_anomaly import persistence
from jax_anomaly.config import TrainConfig
from jax_anomaly.sharding import AXIS, gather, make_mesh, padded_size, place, replicated, train_devices
from jax_anomaly.training.loop import (
    FitResult,
    auto_epochs,
    epoch_batches,
    key_list,
    load_matching_checkpoint,
    steps_per_epoch,
)
from jax_anomaly.training.progress import Progress

# Models vmapped together per backend when ``group`` is None (experiments/bench_stacked.py,
# docs/benchmarks.md): the stacked step loses cache once the models' parameters, moments and
# activations no longer fit, so a CPU takes small groups, a GPU the whole stack. Dense AEs
# (784-128-64-12-3, batch 128, 6,000 samples): on a 2-core Intel Xeon (AVX-512) groups of 4
# ran 118,500 samples/s at K = 16 and 123,200 at K = 64, groups of 2 112,200 / 114,900, all
# vmapped 110,800 / 92,800, one fit after another 90,500 (the MLP GAN: groups of 4 19,300 /
# 19,000, one fit after another 18,100); on a 2-core AMD EPYC (K = 8, before the per-step
# select was dropped) groups of 2 84,500, of 4 79,200, all 73,700, one after another 77,400.
DEFAULT_GROUP = {"cpu": 4}


def default_group(n_models: int, backend: str | None = None) -> int:
    """Models vmapped together for ``n_models`` (per device) on ``backend`` (None: the default
    backend): the divisor of ``n_models`` nearest (in ratio) to the backend's group size, so
    no group is padded with wasted copies (5 models: one group of 5, not two of 4)."""
    target = DEFAULT_GROUP.get(backend or jax.default_backend(), n_models)
    divisors = [d for d in range(1, n_models + 1) if n_models % d == 0]
    return min(divisors, key=lambda d: (abs(math.log(d / target)), d))


def stack_trees(trees: Sequence[Any], what: str = "model") -> Any:
    """``trees`` (one pytree per model, the same structure) stacked on a new leading axis,
    with the first tree's static parts (optimiser functions, apply functions).

    Raises:
      ValueError: trees with other leaf counts or shapes (architectures that change shapes
        cannot share one program).
    """
    leaves = [jax.tree.leaves(t) for t in trees]
    shapes0 = [(np.shape(a), jnp.result_type(a)) for a in leaves[0]]
    for k, ls in enumerate(leaves[1:], 1):
        shapes = [(np.shape(a), jnp.result_type(a)) for a in ls]
        if shapes != shapes0:
            raise ValueError(
                f"{what} {k} has parameters of other shapes than {what} 0: settings that change "
                "shapes (layer sizes, architecture) cannot share one program; train them apart"
            )
    return jax.tree.unflatten(
        jax.tree.structure(trees[0]), [jnp.stack(xs) for xs in zip(*leaves, strict=True)]
    )


def unstack(tree: Any, k: int) -> Any:
    """Model ``k`` of a stacked pytree."""
    return jax.tree.map(lambda a: a[k], tree)


def select(which: jax.Array, new: Any, old: Any) -> Any:
    """Per model: ``new`` where ``which`` (K,) is true, else ``old`` (stacked pytrees)."""
    return jax.tree.map(lambda a, b: jnp.where(which.reshape((-1,) + (1,) * (a.ndim - 1)), a, b), new, old)


_select = jax.jit(select)


@dataclasses.dataclass(frozen=True)
class ModelData:
    """Training (or validation) data of K models: one array all models share, or one per
    model padded to the longest (``x`` (K, N_max, ...), real rows ``n[k]``)."""

    x: Any
    n: tuple[int, ...]
    shared: bool

    @staticmethod
    def of(data, n_models: int, what: str = "training data") -> ModelData:
        if isinstance(data, list | tuple):
            if len(data) != n_models:
                raise ValueError(f"{what}: {len(data)} arrays for {n_models} models")
            arrays = [np.asarray(d) for d in data]
            if any(a.shape[1:] != arrays[0].shape[1:] for a in arrays):
                raise ValueError(f"{what}: the models' arrays differ in shape beyond the row count")
            if any(len(a) == 0 for a in arrays):
                raise ValueError(f"{what}: a model has no rows")
            n = tuple(len(a) for a in arrays)
            x = np.zeros((n_models, max(n), *arrays[0].shape[1:]), arrays[0].dtype)
            for k, a in enumerate(arrays):
                x[k, : len(a)] = a
            return ModelData(x, n, False)
        x = np.asarray(data)
        if len(x) == 0:
            raise ValueError(f"{what} is empty")
        return ModelData(x, (len(x),) * n_models, True)


@dataclasses.dataclass
class StackResult:
    """What ``fit_stack`` returns beside the stacked state.

    Attributes:
      results: one ``FitResult`` per model (its own history, best epoch, early stop);
        ``compile_seconds`` and ``train_seconds`` are the whole program's, shared.
      diverged: model index -> message, for models whose loss became NaN/inf: each keeps its
        last finite state and stops; the others train on.
      group: models vmapped together; ``devices``: devices the model axis was split over.
    """

    results: list[FitResult]
    diverged: dict[int, str]
    compile_seconds: float
    train_seconds: float
    group: int
    devices: int

    # Read like a FitResult (run folders, summaries): the models' metrics averaged per epoch.
    @property
    def history(self) -> list[dict]:
        by_epoch: dict[int, list[dict]] = {}
        for r in self.results:
            for h in r.history:
                by_epoch.setdefault(h["epoch"], []).append(h)
        out = []
        for epoch, rows in sorted(by_epoch.items()):
            names = [k for k in rows[0] if k != "epoch" and isinstance(rows[0][k], int | float)]
            out.append({"epoch": epoch, **{k: float(np.mean([r[k] for r in rows if k in r])) for k in names}})
            out[-1]["models"] = len(rows)
        return out

    @property
    def best_epoch(self) -> int:
        return max(r.best_epoch for r in self.results)

    @property
    def stopped_early(self) -> bool:
        return all(r.stopped_early for r in self.results)


def _rows_per_model(keys, n: tuple[int, ...], batch: tuple[int, ...], drop: bool, shape: tuple[int, int]):
    """Index rows, masks and live steps (K, S, B) of one epoch for every model: models with
    the same row count share one vmapped permutation; shorter ones are padded (mask 0, and
    steps beyond a model's own count are not live)."""
    steps, width = shape
    out_idx, out_mask, out_live, order = [], [], [], []
    for nk, bk in dict.fromkeys(zip(n, batch, strict=True)):
        members = [k for k in range(len(n)) if (n[k], batch[k]) == (nk, bk)]
        idx, mask = jax.vmap(lambda key, nk=nk, bk=bk: epoch_batches(key, nk, bk, drop))(
            jax.random.clone(keys)[np.asarray(members)]  # each model's key is used once
        )
        s = idx.shape[1]
        pad = ((0, 0), (0, steps - s), (0, width - bk))
        out_idx.append(jnp.pad(idx, pad))
        out_mask.append(jnp.pad(mask, pad))
        out_live.append(jnp.broadcast_to(jnp.arange(steps) < s, (len(members), steps)))
        order += members
    back = np.argsort(np.asarray(order))
    return tuple(jnp.concatenate(a)[back] for a in (out_idx, out_mask, out_live))


def fit_stack(
    state: Any,
    make_step: Callable[[dict], Callable],
    data,
    train: TrainConfig,
    *,
    keys,
    hyper: dict[str, Sequence[float]] | None = None,
    make_eval: Callable[[dict], Callable] | None = None,
    val_data=None,
    group: int | None = None,
    devices: int | None = None,
    monitor: str = "val_loss",
    progress: bool | Progress = True,
) -> tuple[Any, StackResult]:
    """Trains K stacked models in one compiled program.

    Args:
      state: the K initial train states stacked on a leading axis (``stack_trees``).
      make_step: ``hyper -> step(state, batch, mask, key) -> (state, metrics)`` for ONE model,
        ``hyper`` that model's dict of scalars (traced); vmapped over the models.
      data: one array (N, ...) every model trains on, or a list of K arrays (one each, any
        row counts: each model keeps its own batches, steps and default epoch count).
      train: the loop's settings, as for ``fit_loop`` (``devices`` aside, see below).
      keys: (K,) PRNG keys; model k's epoch e uses ``fold_in(keys[k], e)`` as ``fit_loop``.
      hyper: name -> K values put on the model axis (e.g. loss weights); None: none.
      make_eval: ``hyper -> eval(state, x) -> {'loss': mean over rows}`` (a mean of
        per-row terms: per-model validation sets of other sizes are evaluated row by row).
      val_data: None, one array, or a list of K arrays.
      group: models vmapped together (None: ``default_group``); the groups run one after
        another inside the same program.
      devices: split the model axis over the first N devices (None: as ``sharding.train_devices``:
        one on a single-host CPU, else all).
      monitor: the metric early stopping watches (``train.patience``).
      progress: show a progress line (or pass a ``Progress``).

    Returns:
      ``(stacked state, StackResult)``; with patience each model's best state.

    Raises:
      ValueError: bad arguments, or a checkpoint written for other data or settings.
    """
    keys = jnp.stack(list(keys)) if isinstance(keys, list | tuple) else keys
    n_models = len(keys)
    hyper = {k: jnp.asarray(v, jnp.float32) for k, v in (hyper or {}).items()}
    for name, v in hyper.items():
        if v.shape != (n_models,):
            raise ValueError(f"hyperparameter '{name}' needs one value per model ({n_models}), got {v.shape}")
    data = ModelData.of(data, n_models)
    val = (
        None if val_data is None or make_eval is None else ModelData.of(val_data, n_models, "validation data")
    )
    if train.patience is not None and val is None:
        raise ValueError("early stopping (patience) needs a validation loss and validation data")
    if train.resume and train.checkpoint is None:
        raise ValueError("resume needs a checkpoint file")
    drop = train.drop_remainder
    batch = tuple(min(train.batch_size, nk) for nk in data.n)
    if drop and any(steps_per_epoch(nk, bk, True) < 1 for nk, bk in zip(data.n, batch, strict=True)):
        raise ValueError("batch_size with drop_remainder leaves a model without a full batch")
    epochs = [train.epochs or auto_epochs(nk, bk, drop) for nk, bk in zip(data.n, batch, strict=True)]
    shape = (max(steps_per_epoch(nk, bk, drop) for nk, bk in zip(data.n, batch, strict=True)), max(batch))

    mesh = make_mesh(train_devices(devices))
    devices = mesh.devices.size
    group = group or default_group(-(-n_models // devices))
    if group < 1:
        raise ValueError(f"group must be >= 1, got {group}")
    k_pad = padded_size(n_models, group * devices)
    pad = np.r_[np.arange(n_models), np.zeros(k_pad - n_models, int)]  # padding: copies of model 0

    def padded(tree):
        return jax.tree.map(lambda a: a[pad], tree)

    n_pad = tuple(data.n[i] for i in pad)
    b_pad = tuple(batch[i] for i in pad)
    # Steps every model takes in every epoch: they need no per-step select (a stopped model
    # steps along and is restored at the end of the epoch); the rest (models of fewer rows
    # than the largest) are taken live or skipped step by step. The select over the whole
    # state cost 21 % (AE) to 32 % (GAN) of a step (docs/benchmarks.md).
    common = min(steps_per_epoch(nk, bk, drop) for nk, bk in zip(n_pad, b_pad, strict=True))

    def local(state, x, vx, vmask, keys, hyper, idx, mask, live, active):
        """The models of one device, in groups of ``group`` run one after another."""
        per_model = {
            "state": state,
            "keys": keys,
            "hyper": hyper,
            "idx": idx,
            "mask": mask,
            "live": live,
            "active": active,
        }
        if not data.shared:
            per_model["x"] = x
        if val is not None and not val.shared:
            per_model.update(vx=vx, vmask=vmask)

        def one_group(g):
            swap = lambda a: jnp.swapaxes(a, 0, 1)  # noqa: E731
            xg = g.get("x", x)

            def body(state, inputs, per_step_select):
                i, rows, row_mask, row_live = inputs
                if data.shared:
                    batch_ = jnp.take(xg, rows, axis=0)
                else:
                    batch_ = jax.vmap(lambda xk, r: jnp.take(xk, r, axis=0))(xg, rows)
                step_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(g["keys"], i)
                new, metrics = jax.vmap(lambda h, s, b, m, k: make_step(h)(s, b, m, k))(
                    g["hyper"], state, batch_, row_mask, step_keys
                )
                return (select(row_live, new, state) if per_step_select else new), metrics

            steps = jnp.arange(g["idx"].shape[1])
            inputs = (steps, swap(g["idx"]), swap(g["mask"]), swap(g["live"]))
            head, tail = (
                jax.tree.map(lambda a, part=part: a[part], inputs)
                for part in (slice(None, common), slice(common, None))
            )
            state, metrics = jax.lax.scan(
                functools.partial(body, per_step_select=False), g["state"], head, unroll=train.unroll
            )
            if common < len(steps):
                state, more = jax.lax.scan(
                    functools.partial(body, per_step_select=True), state, tail, unroll=train.unroll
                )
                metrics = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), metrics, more)
            state = select(g["active"], state, g["state"])
            weights = g["mask"].sum(-1) * g["live"]  # (G, S): real rows of live steps
            total = jnp.maximum(weights.sum(-1), 1.0)
            metrics = jax.tree.map(lambda m: (swap(m) * weights).sum(-1) / total, metrics)
            if val is None:
                return state, metrics
            if val.shared:
                ev = jax.vmap(lambda h, s: make_eval(h)(s, vx))(g["hyper"], state)
            else:

                def per_row(h, s, xk, mk):  # a mean over other row counts: row by row, masked
                    rows = jax.vmap(lambda r: make_eval(h)(s, r[None]))(xk)
                    return jax.tree.map(lambda v: jnp.sum(v * mk) / jnp.maximum(mk.sum(), 1.0), rows)

                ev = jax.vmap(per_row)(g["hyper"], state, g["vx"], g["vmask"])
            return state, {**metrics, **{f"val_{k}": v for k, v in ev.items()}}

        grouped = jax.tree.map(lambda a: a.reshape(-1, group, *a.shape[1:]), per_model)
        state, metrics = jax.lax.map(one_group, grouped)
        ungroup = lambda a: a.reshape(-1, *a.shape[2:])  # noqa: E731
        return jax.tree.map(ungroup, state), jax.tree.map(ungroup, metrics)

    def epoch(state, x, vx, vmask, keys, hyper, e, active):
        ekeys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, e)
        perm_keys, step_keys = jax.vmap(lambda k: tuple(jax.random.split(k)))(ekeys)  # as fit_loop
        idx, mask, live = _rows_per_model(perm_keys, n_pad, b_pad, drop, shape)
        live = live & active[:, None]
        args = (state, x, vx, vmask, step_keys, hyper, idx, mask, live, active)
        if devices == 1:
            return local(*args)
        models = P(AXIS)
        specs = (
            models,
            P() if data.shared else models,
            P() if val is None or val.shared else models,
            P() if val is None or val.shared else models,
            *(models,) * 6,
        )
        return jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=models, check_vma=False)(*args)

    # ---- host side: place, compile, loop over epochs ---------------------------------
    keys_pad = keys[pad]
    hyper_pad = {k: v[pad] for k, v in hyper.items()}
    x_dev = data.x if data.shared else data.x[pad]
    if val is None:
        vx, vmask = None, None
    elif val.shared:
        vx, vmask = val.x, None
    else:
        vx = val.x[pad]
        vmask = (np.arange(vx.shape[1])[None] < np.asarray([val.n[i] for i in pad])[:, None]).astype(
            np.float32
        )
    model_axis = NamedSharding(mesh, P(AXIS))
    put = lambda tree, shared: place(tree, replicated(mesh) if shared else model_axis)  # noqa: E731
    state_pad = put(padded(state), False)
    x_dev = put(x_dev, data.shared)
    vx, vmask = put(vx, val is None or val.shared), put(vmask, val is None or val.shared)
    keys_pad, hyper_pad = put(keys_pad, False), put(hyper_pad, False)
    active0 = put(np.ones(k_pad, bool), False)

    settings = {
        "n": list(data.n),
        "batch_size": list(batch),
        "drop_remainder": drop,
        "patience": train.patience,
        "monitor": monitor,
        "keys": key_list(keys),
        "hyper": {k: np.asarray(v).tolist() for k, v in hyper.items()},
    }
    histories: list[list[dict]] = [[] for _ in range(n_models)]
    best_value = np.full(n_models, np.inf)
    best_epoch = np.zeros(n_models, int)
    stopped = np.zeros(n_models, bool)
    diverged: dict[int, str] = {}
    start = 1
    best_state = state_pad
    if train.resume:
        state_pad, saved_best, meta = load_matching_checkpoint(
            train.checkpoint,
            state_pad,
            settings,
            "resume with the same models, data and seeds, or start afresh",
        )
        histories, start = meta["history"], meta["epoch"] + 1
        best_value = np.asarray([np.inf if v is None else v for v in meta["best_value"]])
        best_epoch, stopped = np.asarray(meta["best_epoch"]), np.asarray(meta["stopped"])
        diverged = {int(k): v for k, v in meta["diverged"].items()}
        state_pad = put(state_pad, False)
        best_state = state_pad if saved_best is None else put(saved_best, False)

    t0 = time.perf_counter()
    compiled = (
        jax.jit(epoch)
        .lower(state_pad, x_dev, vx, vmask, keys_pad, hyper_pad, jnp.int32(1), active0)
        .compile()
    )
    compile_seconds = time.perf_counter() - t0

    def save(epoch_done: int, whole_state, whole_best) -> None:
        meta = {
            "epoch": epoch_done,
            "settings": settings,
            "history": histories,
            "best_value": [None if not np.isfinite(v) else float(v) for v in best_value],
            "best_epoch": best_epoch.tolist(),
            "stopped": stopped.tolist(),
            "diverged": {str(k): v for k, v in diverged.items()},
        }
        persistence.save_checkpoint(
            train.checkpoint,
            state=whole_state,
            meta=meta,
            best_state=whole_best,
        )

    total_epochs = max(epochs)
    bar = (
        progress
        if isinstance(progress, Progress)
        else Progress(total_epochs, "train stack", enabled=progress)
    )
    train_seconds = 0.0

    def training(e: int) -> np.ndarray:  # (K,): the models that run epoch e
        return np.asarray([e <= epochs[k] and not stopped[k] and k not in diverged for k in range(n_models)])

    for e in range(start, total_epochs + 1):
        active = training(e)
        if not active.any():
            break
        active_pad = np.r_[active, np.zeros(k_pad - n_models, bool)]
        t = time.perf_counter()
        new_state, metrics = compiled(
            state_pad, x_dev, vx, vmask, keys_pad, hyper_pad, jnp.int32(e), put(active_pad, False)
        )
        metrics = {
            k: np.asarray(v, np.float64)[:n_models] for k, v in jax.device_get(gather(metrics)).items()
        }
        seconds = time.perf_counter() - t
        train_seconds += seconds
        bad, improved = np.zeros(k_pad, bool), np.zeros(k_pad, bool)
        for k in np.flatnonzero(active):
            values = {name: float(v[k]) for name, v in metrics.items()}
            nonfinite = [name for name, v in values.items() if not math.isfinite(v)]
            if nonfinite:
                bad[k] = True
                diverged[int(k)] = (
                    f"model {k} diverged at epoch {e}: {', '.join(nonfinite)} is NaN/inf (try a lower "
                    f"learning rate); it keeps its state from epoch {e - 1}"
                )
                continue
            histories[k].append({"epoch": e, **values, "seconds": seconds})
            value = values.get(monitor, values.get("loss", np.nan))
            if value < best_value[k]:
                best_value[k], best_epoch[k], improved[k] = value, e, True
            elif train.patience is not None and e - best_epoch[k] >= train.patience:
                stopped[k] = True
        state_pad = _select(put(~bad, False), new_state, state_pad) if bad.any() else new_state
        if train.patience is not None and improved.any():
            best_state = _select(put(improved, False), state_pad, best_state)
        live = [k for k in np.flatnonzero(active) if not bad[k]]
        shown = {name: float(np.mean(v[live])) for name, v in metrics.items()} if live else {}
        bar.update(e, {**shown, "models": len(live)})
        last = e == total_epochs or not training(e + 1).any()
        if train.checkpoint is not None and (e % (train.checkpoint_every or 1) == 0 or last):
            save(e, *gather((state_pad, best_state if train.patience is not None else None)))  # all processes
    bar.close()
    final = best_state if train.patience is not None else state_pad
    results = [
        FitResult(
            history=histories[k],
            compile_seconds=compile_seconds,
            train_seconds=train_seconds,
            best_epoch=int(best_epoch[k]) if train.patience is not None else len(histories[k]),
            stopped_early=bool(stopped[k]),
        )
        for k in range(n_models)
    ]
    out = jax.tree.map(lambda a: a[:n_models], gather(final))
    return out, StackResult(results, diverged, compile_seconds, train_seconds, group, devices)
