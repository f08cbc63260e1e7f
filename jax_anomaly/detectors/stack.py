"""K models of one detector trained and scored as one compiled program: seed ensembles, one
model per normal class, and sweeps of scalar settings (loss weights, learning rate) on the
model axis. Any registered detector: its phases are stacked as they are (``fit_stack`` of
``training.stacked``), its per-sample scorer is vmapped over the models."""

from __future__ import annotations

import copy
import dataclasses
import functools
import numbers
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors.base import (
    Detector,
    Fitted,
    _phase_train,
    check_features,
    check_fit_data,
    merge_results,
    phase_train_config,
    saturate,
)
from jax_anomaly.sharding import make_mesh, map_samples, shard_samples
from jax_anomaly.training import Progress
from jax_anomaly.training.stacked import StackResult, fit_stack, stack_trees, unstack

# TrainConfig fields that may differ between the models of a stack (they live in the
# optimiser state: optax.inject_hyperparams); any other difference needs separate programs.
TRAIN_HYPER = ("learning_rate", "b1", "b2")


@dataclasses.dataclass(frozen=True)
class FittedStack:
    """K trained models of one detector, parameters stacked on a leading model axis.

    Attributes:
      detector: the detector's registry name.
      configs: the K configs (equal but for the numeric fields in ``hyper``).
      params: the scoring parameters, every leaf (K, ...).
      result: the training record (per-model histories, diverged models); None when loaded.
      n_features: feature count.
      hyper: config field -> K values that differ between the models.
      state: the stacked final train state (``{phase: state}`` with several phases).
    """

    detector: str
    configs: tuple
    params: Any
    result: StackResult | None
    n_features: int
    hyper: dict[str, tuple[float, ...]]
    state: Any = None

    @property
    def n_models(self) -> int:
        return len(self.configs)

    def model(self, k: int) -> Fitted:
        """Model ``k`` alone, as ``Detector.fit`` returns it."""
        result = None if self.result is None else self.result.results[k]
        state = None if self.state is None else unstack(self.state, k)
        return Fitted(self.detector, self.configs[k], unstack(self.params, k), result, self.n_features, state)


def stack_hyper(configs: Sequence[Any]) -> dict[str, tuple[float, ...]]:
    """The config fields that differ between ``configs``, one value per model.

    Raises:
      ValueError: configs of other types, or a differing field that is not a float (sizes,
        architectures and other settings that change the program cannot share one).
    """
    first = configs[0]
    if any(type(c) is not type(first) for c in configs):
        raise ValueError("the models of a stack need configs of one type (one detector)")
    hyper = {}
    for f in dataclasses.fields(first):
        values = [getattr(c, f.name) for c in configs]
        if all(v == values[0] for v in values):
            continue
        numeric = all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values)
        if not numeric or f.type not in (float, "float"):
            raise ValueError(
                f"'{f.name}' differs between the models ({values}) but is not a float setting: only "
                "loss weights, rates and other float settings can vary on the model axis; sizes and "
                "other settings that change the program need separate fits"
            )
        hyper[f.name] = tuple(float(v) for v in values)
    return hyper


def with_values(cfg, values: dict) -> Any:
    """``cfg`` with some numeric fields replaced by (traced) values, without re-validation:
    the copy a vmapped step is built from."""
    out = copy.copy(cfg)
    for name, v in values.items():
        object.__setattr__(out, name, v)
    return out


def _train_hyper(trains: Sequence[TrainConfig]) -> None:
    first = trains[0]
    for f in dataclasses.fields(first):
        if f.name not in TRAIN_HYPER and any(getattr(t, f.name) != getattr(first, f.name) for t in trains):
            raise ValueError(
                f"TrainConfig.{f.name} differs between the models; only {', '.join(TRAIN_HYPER)} may "
                "vary on the model axis"
            )


def fit_stack_detector(
    detector: Detector,
    configs: Sequence[Any],
    train: TrainConfig | Sequence[TrainConfig],
    x_train,
    x_val=None,
    *,
    keys,
    group: int | None = None,
    devices: int | None = None,
    progress: bool = True,
) -> FittedStack:
    """Trains K models of ``detector`` in one program.

    Args:
      configs: K configs (equal but for numeric fields: ``stack_hyper``).
      train: one ``TrainConfig``, or K differing only in ``TRAIN_HYPER``.
      x_train: (N, D) data every model trains on, or a list of K arrays (N_k, D).
      x_val: None, one array, or a list of K arrays (validation loss, early stopping).
      keys: K PRNG keys; model k ends as ``detector.fit(configs[k], ..., key=keys[k])``.
      group, devices: the model axis's layout (``training.stacked.fit_stack``).

    Raises:
      ValueError: bad data, configs or settings.
    """
    if not detector.trains:
        raise ValueError(
            f"detector '{detector.name}' is fitted in closed form (a baseline): it has no model axis; "
            "fit one model per seed instead"
        )
    k = len(keys)
    if len(configs) != k:
        raise ValueError(f"{len(configs)} configs for {k} keys")
    trains = list(train) if isinstance(train, list | tuple) else [train] * k
    if len(trains) != k:
        raise ValueError(f"{len(trains)} train configs for {k} models")
    _train_hyper(trains)
    hyper = stack_hyper(configs)
    per_model = isinstance(x_train, list | tuple)
    if per_model:
        if len(x_train) != k or (isinstance(x_val, list | tuple) and len(x_val) != k):
            raise ValueError(f"per-model data needs {k} training (and validation) arrays")
        checked = [
            check_fit_data(x, x_val[i] if isinstance(x_val, list | tuple) else x_val)
            for i, x in enumerate(x_train)
        ]
        x_train = [c[0] for c in checked]
        x_val = None if any(c[1] is None for c in checked) else [c[1] for c in checked]
        n_features = x_train[0].shape[1]
        if any(x.shape[1] != n_features for x in x_train):
            raise ValueError("the models' training arrays differ in feature count")
    else:
        x_train, x_val = check_fit_data(x_train, x_val)
        n_features = x_train.shape[1]
    cfg0 = configs[0]

    phase_keys = [detector._phase_keys(kk) for kk in keys]
    states, results, previous = {}, [], None
    for i, phase in enumerate(detector.phases):
        phase_trains = [_phase_train(phase, c, t) for c, t in zip(configs, trains, strict=True)]
        base = phase_train_config(phase, i, cfg0, trains[0])  # the loop's settings (checkpoint)
        init_keys, train_keys = zip(*(jax.random.split(pk[i]) for pk in phase_keys), strict=True)
        inits = []
        for m in range(k):
            extra = {} if i == 0 else {"previous": unstack(previous, m)}
            s = phase.init_state(configs[m], phase_trains[m], n_features, init_keys[m], **extra)
            if phase.prepare_state:
                s = phase.prepare_state(configs[m], s, x_train[m] if per_model else x_train)
            inits.append(s)
        state = stack_trees(inits)

        def make_step(h, phase=phase, base=base):
            return phase.make_step(with_values(cfg0, h), base, n_features)

        make_eval = None
        if phase.make_eval is not None:

            def make_eval(h, phase=phase):
                return phase.make_eval(with_values(cfg0, h), n_features)

        state, result = fit_stack(
            state,
            make_step,
            x_train,
            base,
            keys=list(train_keys),
            hyper=hyper,
            make_eval=make_eval,
            val_data=x_val,
            group=group,
            devices=devices,
            progress=progress,
        )
        states[phase.name] = state
        previous = jax.vmap(phase.params_of)(state)
        results.append(result)
    return FittedStack(
        detector.name,
        tuple(configs),
        previous,
        _merge(detector, results),
        n_features,
        hyper,
        state=detector._packed(states),
    )


def _merge(detector: Detector, results: list[StackResult]) -> StackResult:
    last = results[-1]
    per_model = [
        merge_results([(p.name, r.results[m]) for p, r in zip(detector.phases, results, strict=True)])
        for m in range(len(last.results))
    ]
    diverged = {}
    for p, r in zip(detector.phases, results, strict=True):
        diverged.update({m: f"{p.name}: {msg}" if len(results) > 1 else msg for m, msg in r.diverged.items()})
    return StackResult(
        per_model,
        diverged,
        sum(r.compile_seconds for r in results),
        sum(r.train_seconds for r in results),
        last.group,
        last.devices,
    )


# ---- scoring ------------------------------------------------------------------------------


def hyper_sample_scorer(make_sample_scorer, cfg, hyper_names: tuple[str, ...], n_features: int):
    """``one(params, hyper, *row) -> dict``: the per-sample scorer of the model whose float
    settings ``hyper_names`` take the (traced) values ``hyper``; vmapped over a stack's models."""

    def one(params, hyper, *row):
        values = dict(zip(hyper_names, hyper, strict=True))
        return make_sample_scorer(with_values(cfg, values), n_features)(params, *row)

    return one


@functools.lru_cache(maxsize=32)
def stack_scorer(
    make_sample_scorer,
    cfg,
    hyper_names: tuple[str, ...],
    n_features: int,
    chunk: int,
    mesh,
    per_model_inputs: bool = False,
):
    """``(params_and_hyper, x, *extra) -> dict of (N, K, ...)``: the per-sample scorer vmapped
    over the models (inner) and over chunks of ``chunk`` rows (``lax.map``), sharded by rows.
    With ``per_model_inputs`` each ``extra`` row holds one entry per model (N, K, ...)."""
    one = hyper_sample_scorer(make_sample_scorer, cfg, hyper_names, n_features)

    def local(packed, *xs):
        params, hyper = packed
        extra_axis = 0 if per_model_inputs else None
        models = jax.vmap(one, in_axes=(0, 0, None, *(extra_axis,) * (len(xs) - 1)))
        return jax.lax.map(lambda row: models(params, hyper, *row), xs, batch_size=chunk)

    return shard_samples(local, mesh)


def score_stack(
    detector: Detector, stack: FittedStack, x, *, key=None, devices: int | None = None, progress=False
) -> dict[str, np.ndarray]:
    """Every model's scores of every row of ``x`` (the detector's input range) in one call.

    Args:
      key: the PRNG key of a detector's random draws (VAE samples, AnoGAN's starting latents):
        one key shared by the models, or a list of K keys, model k then drawing exactly what
        it would draw alone with ``keys[k]``.

    Returns:
      the sample scorer's dict with a leading model axis: ``score`` (K, N), ...
    """
    x = check_features(x, stack.n_features)
    extra, per_model = (), isinstance(key, list | tuple)
    if detector.score_inputs is not None:
        if key is None:
            raise ValueError(f"detector '{detector.name}' needs a PRNG key to score (its random draws)")
        if per_model:
            if len(key) != stack.n_models:
                raise ValueError(f"{len(key)} scoring keys for {stack.n_models} models")
            draws = [detector.score_inputs(c, x, kk) for c, kk in zip(stack.configs, key, strict=True)]
            extra = tuple(np.stack([np.asarray(d[i]) for d in draws], axis=1) for i in range(len(draws[0])))
        else:
            extra = detector.score_inputs(stack.configs[0], x, key)
    mesh = make_mesh(devices)
    names = tuple(stack.hyper)
    hyper = tuple(jnp.asarray(stack.hyper[n], jnp.float32) for n in names)
    per_device = -(-len(x) // mesh.devices.size)
    chunk = max(1, min(detector.score_chunk(stack.configs[0], per_device) // stack.n_models, per_device))
    scorer = stack_scorer(
        detector.make_sample_scorer,
        stack.configs[0],
        names,
        stack.n_features,
        chunk,
        mesh,
        per_model and bool(extra),
    )
    bar = (
        progress
        if isinstance(progress, Progress)
        else Progress(len(x), "score stack", enabled=bool(progress))
    )
    out = map_samples(scorer, mesh, (stack.params, hyper), x, *extra)
    bar.update(len(x))
    bar.close()
    out = {k: np.moveaxis(v, 0, 1) for k, v in out.items()}
    return {**out, "score": saturate(out["score"])}
