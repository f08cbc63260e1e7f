"""Fit a detector, calibrate its threshold on held-out normal scores, score, save and load:
the one path that the estimators, the runner (CLI) and the experiments share."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import numpy as np

from jax_anomaly import persistence, thresholds
from jax_anomaly.config import TrainConfig, matmul_precision, to_dict
from jax_anomaly.detectors import Detector, Fitted, get_detector
from jax_anomaly.environment import versions
from jax_anomaly.training import Progress


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
    """

    fitted: Fitted
    spec: thresholds.ThresholdSpec
    threshold: float
    calibration_scores: np.ndarray
    calibration: str
    calibration_seconds: float


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
    """
    if not spec.fittable:
        raise ValueError(
            f"threshold '{spec}' needs test scores or labels; a fitted model takes one of "
            f"{', '.join(k + ':...' for k in thresholds.FITTABLE)}"
        )
    fit_key, _, score_key = seed_keys(seed)
    with matmul_precision(precision):
        fitted = detector.fit_checked(
            cfg,
            train,
            detector.to_input(x_train),
            None if x_val is None else detector.to_input(x_val),
            key=fit_key,
            progress=progress,
        )
        t0 = time.perf_counter()
        calibration = x_train if x_val is None else x_val
        bar = Progress(len(calibration), "score held-out normals", unit="samples", enabled=progress)
        scores = _score(detector, fitted, calibration, score_key, devices, bar)["score"]
        seconds = time.perf_counter() - t0
    return Calibrated(
        fitted=fitted,
        spec=spec,
        threshold=thresholds.select_threshold(spec, val_scores=scores),
        calibration_scores=scores,
        calibration="training" if x_val is None else "validation",
        calibration_seconds=seconds,
    )


def score_details(
    detector: Detector,
    fitted: Fitted,
    x: np.ndarray,
    *,
    seed: int = 0,
    precision=None,
    devices=None,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Every per-sample output of ``detector`` on checked data ``x`` in [0, 1]: ``score``
    and, where the method has them, ``reconstruction`` (mapped back to [0, 1]), ``z``, ...
    ``progress`` shows a progress line with rate and ETA."""
    bar = Progress(len(x), "score", unit="samples", enabled=progress)
    with matmul_precision(precision):
        return _score(detector, fitted, x, seed_keys(seed)[2], devices, bar)


def _score(detector: Detector, fitted: Fitted, x, key, devices, bar: Progress) -> dict:
    progress = bar if bar.enabled else False
    out = detector.score_checked(fitted, detector.to_input(x), key=key, devices=devices, progress=progress)
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
    template = detector.init_state(fitted.config, train, fitted.n_features, jax.random.key(0))
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
        "model_config": to_dict(fitted.config),
        "train": to_dict(dataclasses.replace(train, checkpoint=None, resume=False)),
        "settings": settings,
        "n_features": fitted.n_features,
        "threshold": {"spec": str(model.spec), "value": model.threshold},
        "calibration": {"source": model.calibration, "scores": np.asarray(model.calibration_scores).tolist()},
        "history": fitted.result.history if fitted.result else [],
        "saved_with": versions(),
        **extra,
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
        model = Calibrated(
            fitted=fitted,
            spec=thresholds.parse_threshold(manifest["threshold"]["spec"]),
            threshold=float(manifest["threshold"]["value"]),
            calibration_scores=np.asarray(manifest["calibration"]["scores"], np.float64),
            calibration=manifest["calibration"]["source"],
            calibration_seconds=0.0,
        )
        model = restored(model, train, what=f"model state {path}")
    except (KeyError, TypeError) as e:
        raise ValueError(f"saved model {path} is incomplete or from another version: {e!r}") from None
    return manifest, model, train, persistence.scaler_from_dict(payload.get("scaler"))


def tuples(d: dict) -> dict:
    """JSON lists back to the tuples the configs hold."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
