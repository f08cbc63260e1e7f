"""Fit a detector, calibrate its threshold on held-out normal scores, score, save and load:
the one path that the estimators, the runner (CLI) and the experiments share."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import numpy as np

from jax_anomaly import persistence, thresholds
from jax_anomaly.config import TrainConfig, matmul_precision, replace, to_dict
from jax_anomaly.detectors import Detector, Fitted, get_detector
from jax_anomaly.detectors import base as detector_base
from jax_anomaly.detectors.stack import FittedStack, fit_stack_detector, score_stack
from jax_anomaly.environment import versions
from jax_anomaly.image_scores import PIXEL_SCALE, is_standardised, pixel_scale
from jax_anomaly.sharding import LOCAL, gather_shares, pad_rows
from jax_anomaly.training import Progress
from jax_anomaly.training.stacked import stack_trees


@dataclasses.dataclass(frozen=True)
class Calibrated:
    """A fitted detector with its threshold.

    Attributes:
      fitted: the trained detector.
      spec: the threshold rule (fittable: from held-out normal scores).
      threshold: its value; ``score > threshold`` is flagged.
      calibration_scores: the held-out normal scores it was chosen from (N_val,).
      calibration: ``'validation'`` (held-out normals) or ``'training'`` (none held out).
      calibration_seconds: time spent scoring them.
      standardise: for an ensemble (``fitted`` a ``FittedStack`` of K models): each model's
        ``(mean, std)`` (K,) of its held-out normal scores; the ensemble score is the mean of
        the models' standardised scores (``combine``), and ``calibration_scores`` are those.
    """

    fitted: Fitted | FittedStack
    spec: thresholds.ThresholdSpec
    threshold: float
    calibration_scores: np.ndarray
    calibration: str
    calibration_seconds: float
    standardise: tuple[np.ndarray, np.ndarray] | None = None


def standardisation(model_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each model's ``(mean, std)`` of its held-out normal scores ``(K, N)``; a std of 0
    (constant scores) counts as 1."""
    scores = np.asarray(model_scores, np.float64)
    std = scores.std(axis=1)
    return scores.mean(axis=1), np.where(std > 0, std, 1.0)


def combine(model_scores: np.ndarray, standardise: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The ensemble score (N,): each model's scores ``(K, N)`` standardised by its held-out
    normal scores, then averaged over the models."""
    mean, std = standardise
    return ((np.asarray(model_scores, np.float64) - mean[:, None]) / std[:, None]).mean(axis=0)


def seed_keys(seed: int):
    """``(fit, validation split, score)`` PRNG keys, all from ``seed``.

    Raises:
      ValueError: ``seed`` is not an integer >= 0.
    """
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    fit_key, rest = jax.random.split(jax.random.key(int(seed)))
    split_key, score_key = jax.random.split(rest)
    return fit_key, split_key, score_key


def fit_calibrated(
    detector: Detector,
    cfg,
    train: TrainConfig,
    x_train: np.ndarray,
    x_val: np.ndarray | None,
    *,
    spec: thresholds.ThresholdSpec,
    seed: int = 0,
    precision: str | None = None,
    devices: int | None = None,
    progress: bool = False,
    n_models: int = 1,
    group: int | None = None,
    total_rows: int | None = None,
) -> Calibrated:
    """Trains ``detector`` on ``x_train`` and sets the threshold ``spec`` from the scores of
    ``x_val`` (or of ``x_train`` when None).

    Args:
      detector: a registered detector.
      cfg: its config.
      train: training settings.
      x_train, x_val: checked data (``check_fit_data``) in [0, 1]; mapped to the detector's
        input range here.
      spec: a fittable threshold rule.
      seed: every random choice derives from it (``seed_keys``).
      precision: matmul precision (None: the backend's default).
      devices: score over the first N devices (None: all).
      progress: show the training progress line.
      n_models: train an ensemble of this many models in one program (``detectors.stack``):
        model k with the fit key of seed ``seed + k``, all on the same data; scored by
        ``combine``.
      group: models vmapped together in an ensemble (None: the backend's default).
      total_rows: ``x_train`` holds only this process's ``sharding.process_share`` of that
        many training rows (a multi-process run; one model).
    """
    if not isinstance(n_models, int | np.integer) or n_models < 1:
        raise ValueError(f"n_models must be an integer >= 1, got {n_models!r}")
    if total_rows is not None and n_models > 1:
        raise ValueError("an ensemble splits its models over the processes: each needs every training row")
    _check_fittable(spec)
    fit_key, _, score_key = seed_keys(seed)
    x_in, val_in = detector.to_input(x_train), None if x_val is None else detector.to_input(x_val)
    with matmul_precision(precision):
        if n_models == 1:
            fitted = detector.fit_checked(
                cfg, train, x_in, val_in, key=fit_key, progress=progress, total_rows=total_rows
            )
        else:
            keys = [seed_keys(int(seed) + k)[0] for k in range(n_models)]
            fitted = fit_stack_detector(
                detector, [cfg] * n_models, train, x_in, val_in, keys=keys, group=group, progress=progress
            )
        t0 = time.perf_counter()
        calibration = x_train if x_val is None else x_val
        gather = x_val is None and total_rows is not None  # each process scores its share
        fitted = with_pixel_scale(
            detector, fitted, calibration, key=score_key, devices=LOCAL if gather else devices, gather=gather
        )
        bar = Progress(len(calibration), "score held-out normals", unit="samples", enabled=progress)
        out = _score(detector, fitted, calibration, score_key, LOCAL if gather else devices, bar, None)
        out = gather_shares(out) if gather else out
        seconds = time.perf_counter() - t0
    standardise = None
    scores = out["score"]
    if n_models > 1:
        standardise = standardisation(out["model_scores"])
        scores = combine(out["model_scores"], standardise)
    return Calibrated(
        fitted=fitted,
        spec=spec,
        threshold=thresholds.select_threshold(spec, val_scores=scores),
        calibration_scores=scores,
        calibration="training" if x_val is None else "validation",
        calibration_seconds=seconds,
        standardise=standardise,
    )


def with_pixel_scale(
    detector: Detector, fitted, calibration, *, key, devices=None, gather: bool = False
) -> Fitted | FittedStack:
    """``fitted`` ready to score a standardised score (``image_scores``: ``mean3_std``, ...):
    its parameters with the ``PIXEL_SCALE`` fitted on the maps of the held-out normal rows
    ``calibration`` (in [0, 1]); any other score: ``fitted`` unchanged.

    Args:
      calibration: the rows, or for a stack one array per model (each model's own rows).
      key: the score key (a stack: one or one per model), as ``raw_scores`` takes it.
      gather: the rows are this process's share: gather the maps of every process.
    """
    stack = isinstance(fitted, FittedStack)
    cfg = fitted.configs[0] if stack else fitted.config
    if not is_standardised(getattr(cfg, "score", "")):
        return fitted

    params = {k: v for k, v in fitted.params.items() if k != PIXEL_SCALE}  # maps undivided
    unscaled = dataclasses.replace(fitted, params=params)

    def maps(rows):
        out = raw_scores(detector, unscaled, detector.to_input(rows), key=key, devices=devices)
        return gather_shares({"map": out["map"]})["map"] if gather else out["map"]

    if isinstance(calibration, list | tuple):  # one array per model; shared arrays scored once
        if not stack or len(calibration) != fitted.n_models:
            raise ValueError("one calibration array per model needs a stack of as many models")
        cache = {}
        scale = np.stack(
            [pixel_scale(cache.setdefault(id(rows), maps(rows))[k]) for k, rows in enumerate(calibration)]
        )
    else:
        scale = pixel_scale(maps(calibration))
    return dataclasses.replace(fitted, params={**params, PIXEL_SCALE: jax.numpy.asarray(scale)})


def _check_fittable(spec: thresholds.ThresholdSpec) -> None:
    if not spec.fittable:
        raise ValueError(
            f"threshold '{spec}' needs test scores or labels; a fitted model takes one of "
            f"{', '.join(k + ':...' for k in thresholds.FITTABLE)}"
        )


def fit_sweep(
    detector: Detector,
    configs: list,
    trains: list[TrainConfig],
    x_train: np.ndarray,
    x_val: np.ndarray | None,
    *,
    spec: thresholds.ThresholdSpec,
    seeds: list[int],
    precision: str | None = None,
    devices: int | None = None,
    progress: bool = False,
    group: int | None = None,
) -> tuple[FittedStack, list[Calibrated]]:
    """K models of ``detector``, model k with ``configs[k]``, ``trains[k]`` and ``seeds[k]``,
    trained as one program on the same data; each with its own threshold from its own scores
    of ``x_val`` (or ``x_train``). Model k ends as ``fit_calibrated`` would fit it alone
    (``detectors.stack``: float settings and ``TrainConfig``'s rates may differ, sizes not).

    Returns:
      ``(stack, calibrated)``: the stack, and one ``Calibrated`` per model (its ``fitted`` is
      the stack's model k alone).
    """
    _check_fittable(spec)
    keys = [seed_keys(s) for s in seeds]
    x_in, val_in = detector.to_input(x_train), None if x_val is None else detector.to_input(x_val)
    calibration = x_train if x_val is None else x_val
    with matmul_precision(precision):
        stack = fit_stack_detector(
            detector, configs, trains, x_in, val_in, keys=[k[0] for k in keys], group=group, progress=progress
        )
        t0 = time.perf_counter()
        stack = with_pixel_scale(detector, stack, calibration, key=[k[2] for k in keys], devices=devices)
        scores = raw_scores(
            detector,
            stack,
            detector.to_input(calibration),
            key=[k[2] for k in keys],
            devices=devices,
            progress=progress,
        )["score"]
        seconds = time.perf_counter() - t0
    models = [
        Calibrated(
            fitted=stack.model(k),
            spec=spec,
            threshold=thresholds.select_threshold(spec, val_scores=scores[k]),
            calibration_scores=np.asarray(scores[k], np.float64),
            calibration="training" if x_val is None else "validation",
            calibration_seconds=seconds / stack.n_models,
        )
        for k in range(stack.n_models)
    ]
    return stack, models


def score_details(
    detector: Detector,
    fitted: Fitted | FittedStack,
    x: np.ndarray,
    *,
    seed: int = 0,
    precision=None,
    devices=None,
    progress: bool = False,
    standardise: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Every per-sample output of ``detector`` on checked data ``x`` in [0, 1]: ``score``
    and, where the method has them, ``reconstruction`` (mapped back to [0, 1]), ``z``, ...
    ``progress`` shows a progress line with rate and ETA.

    For an ensemble (``fitted`` a ``FittedStack``; pass its ``standardise``): ``score`` is
    the ensemble score (``combine``), ``model_scores`` (K, N) each model's, and the other
    parts are averaged over the models."""
    bar = Progress(len(x), "score", unit="samples", enabled=progress)
    with matmul_precision(precision):
        return _score(detector, fitted, x, seed_keys(seed)[2], devices, bar, standardise)


# Rows are scored in calls of a multiple of this many (copies of the first row pad them): a
# row then gets the same score bits alone as in a batch of up to a few hundred rows (XLA's
# CPU matrix-vector path for 1 row rounds differently from its matrix-matrix path; measured).
SCORE_ROWS = 64


def raw_scores(detector: Detector, fitted, x_in, *, key, devices=None, progress=False) -> dict:
    """The sample scorer's outputs for rows ``x_in`` (the detector's input range) of one model
    (N, ...) or of a stack (K, N, ...), scored in calls of a multiple of ``SCORE_ROWS`` rows.
    ``key``: a stack takes one key or K (``score_stack``)."""
    n = len(x_in)
    if x_in.nbytes <= detector_base.SCORE_BYTES:  # a larger host set: scored (and padded) by parts
        x_in = pad_rows(x_in, SCORE_ROWS)
    if isinstance(fitted, FittedStack):
        out = score_stack(detector, fitted, x_in, key=key, devices=devices, progress=progress)
        return {k: v[:, :n] for k, v in out.items()}
    out = detector.score_checked(fitted, x_in, key=key, devices=devices, progress=progress)
    return {k: v[:n] for k, v in out.items()}


def _score(detector: Detector, fitted, x, key, devices, bar: Progress, standardise) -> dict:
    out = raw_scores(
        detector,
        fitted,
        detector.to_input(x),
        key=key,
        devices=devices,
        progress=bar if bar.enabled else False,
    )
    if isinstance(fitted, FittedStack):
        model_scores = out.pop("score")
        out = {k: v.mean(axis=0) for k, v in out.items()}
        out["model_scores"] = model_scores
        out["score"] = (
            model_scores.mean(axis=0) if standardise is None else combine(model_scores, standardise)
        )
    if "reconstruction" in out:
        out["reconstruction"] = detector.from_input(out["reconstruction"])
    return out


# ---- pickling -------------------------------------------------------------------------


def portable(model: Calibrated) -> Calibrated:
    """``model`` with its arrays on the host and its train state as nested dicts of arrays
    (the optimiser's closures dropped): what ``pickle`` can hold. ``restored`` undoes it."""
    fitted = model.fitted
    state = persistence.state_dict(fitted.state)
    return dataclasses.replace(
        model, fitted=dataclasses.replace(fitted, params=persistence.host(fitted.params), state=state)
    )


def restored(model: Calibrated, train: TrainConfig, what: str = "pickled model state") -> Calibrated:
    """A ``portable`` model (or one read from a folder) with its train state, a nested dict of
    arrays, back in its typed structure (optimiser state included: training could continue).

    Raises:
      ValueError: the state does not match the model's structure (``what`` names it).
    """
    fitted = model.fitted
    if fitted.state is None:
        return model
    detector = get_detector(fitted.detector)
    configs = fitted.configs if isinstance(fitted, FittedStack) else (fitted.config,)
    templates = [detector.init_state(c, train, fitted.n_features, jax.random.key(0)) for c in configs]
    template = stack_trees(templates) if isinstance(fitted, FittedStack) else templates[0]
    state = persistence.restore_into(template, fitted.state, what=what)
    return dataclasses.replace(model, fitted=dataclasses.replace(fitted, state=state))


# ---- saved models ---------------------------------------------------------------------


def save(path, model: Calibrated, *, train: TrainConfig, settings: dict, scaler=None, **extra) -> Path:
    """Writes ``model`` to the folder ``path`` (parameters, optimiser state, config, training
    settings, threshold, held-out scores, an optional fitted scikit-learn ``scaler``, and
    versions). ``settings``: the other estimator parameters to restore (``precision``,
    ``seed``, ``dataset``, ``validation_fraction``, ...); ``extra``: more manifest entries."""
    fitted = model.fitted
    detector = get_detector(fitted.detector)
    manifest = {
        "detector": fitted.detector,
        "estimator": detector.estimator,
        "model_config": to_dict(fitted.configs[0] if isinstance(fitted, FittedStack) else fitted.config),
        "train": to_dict(dataclasses.replace(train, checkpoint=None, resume=False)),
        "settings": settings,
        "n_features": fitted.n_features,
        "threshold": {"spec": str(model.spec), "value": model.threshold},
        "calibration": {"source": model.calibration, "scores": np.asarray(model.calibration_scores).tolist()},
        "history": fitted.result.history if fitted.result else [],
        "saved_with": versions(),
        **extra,
    }
    if isinstance(fitted, FittedStack):  # an ensemble: the whole stack and its combination
        manifest["ensemble"] = {
            "n_models": fitted.n_models,
            "hyper": {k: list(v) for k, v in fitted.hyper.items()},
            "standardise": [np.asarray(a).tolist() for a in model.standardise],
        }
    return persistence.save_model(
        path, manifest=manifest, params=fitted.params, state=fitted.state, scaler=scaler
    )


def load(path):
    """``(manifest, Calibrated, TrainConfig, scaler or None)`` from a folder written by ``save``.

    Raises:
      ValueError: a missing, corrupt or incomplete folder.
    """
    manifest, payload = persistence.load_model(path)
    try:
        detector = get_detector(manifest["detector"])
        cfg = detector.config_cls(**tuples(manifest["model_config"]))
        train = TrainConfig(**manifest["train"])
        n_features = int(manifest["n_features"])
        fitted = Fitted(detector.name, cfg, payload["params"], None, n_features, state=payload.get("state"))
        standardise = None
        if "ensemble" in manifest:
            ens = manifest["ensemble"]
            hyper = {k: tuple(v) for k, v in ens["hyper"].items()}
            configs = tuple(
                replace(cfg, **{k: v[i] for k, v in hyper.items()}) for i in range(int(ens["n_models"]))
            )
            fitted = FittedStack(detector.name, configs, fitted.params, None, n_features, hyper, fitted.state)
            standardise = tuple(np.asarray(a, np.float64) for a in ens["standardise"])
        model = Calibrated(
            fitted=fitted,
            spec=thresholds.parse_threshold(manifest["threshold"]["spec"]),
            threshold=float(manifest["threshold"]["value"]),
            calibration_scores=np.asarray(manifest["calibration"]["scores"], np.float64),
            calibration=manifest["calibration"]["source"],
            calibration_seconds=0.0,
            standardise=standardise,
        )
        model = restored(model, train, what=f"model state {path}")
    except (KeyError, TypeError) as e:
        raise ValueError(f"saved model {path} is incomplete or from another version: {e!r}") from None
    return manifest, model, train, persistence.scaler_from_dict(payload.get("scaler"))


def tuples(d: dict) -> dict:
    """JSON lists back to the tuples the configs hold."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
