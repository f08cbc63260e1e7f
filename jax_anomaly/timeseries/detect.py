"""Detectors on a time series: scale the series by its training part, cut it into sliding
windows, fit a registered detector (or a baseline) on the windows, map window scores back
to points, and set the threshold on the point scores of a held-out normal stretch. The CLI,
the estimator, the experiment and the tests all go through ``fit_series`` / ``score_series``."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from jax_anomaly import fitting, thresholds
from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors import detector_names, get_detector
from jax_anomaly.timeseries.baselines import BASELINES, WINDOW_BASELINES, rolling_zscore
from jax_anomaly.timeseries.discords import Discords
from jax_anomaly.timeseries.windows import (
    POINT_RULES,
    as_series,
    dominant_period,
    sliding_windows,
    windows_to_points,
)


@dataclasses.dataclass(frozen=True)
class SeriesModel:
    """A fitted series detector.

    Attributes:
      method: registered detector name or baseline name (``BASELINES``).
      window: window length (points); ``stride`` the training windows' step (scoring uses
        every window); ``rule``: how window scores map to points (``windows_to_points``).
      offset, scale: (C,) per-channel min and range of the training part: the series is
        scaled ``(x - offset) / scale`` (the training part into [0, 1]).
      model: the fitted detector (``fitting.Calibrated``) or baseline object.
      threshold: point scores above it are flagged; ``spec`` the rule that set it from
        ``calibration_scores`` (point scores of the held-out stretch, or of the training part).
      fit_seconds: training time (deep: without compilation, ``compile_seconds``).
    """

    method: str
    window: int
    stride: int
    rule: str
    offset: np.ndarray
    scale: np.ndarray
    model: Any
    threshold: float
    spec: thresholds.ThresholdSpec
    calibration_scores: np.ndarray
    calibration: str
    fit_seconds: float
    compile_seconds: float = 0.0

    @property
    def is_deep(self) -> bool:
        return isinstance(self.model, fitting.Calibrated)

    @property
    def n_channels(self) -> int:
        return len(self.offset)

    def scaled(self, series) -> np.ndarray:
        x = as_series(series)
        if x.shape[1] != self.n_channels:
            raise ValueError(f"series has {x.shape[1]} channel(s); the model was fitted on {self.n_channels}")
        return _scale(x, self.offset, self.scale)


def _scale(x: np.ndarray, offset: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return ((x - offset) / scale).astype(np.float32)


# Closed-form methods that see the whole series (not windows one by one): name -> class with
# ``fit(series)`` and ``score(series) -> point scores`` on the scaled series.
SERIES_METHODS = {"discords": Discords}
# ``SeriesDetector()`` and a series run without a detector.
DEFAULT_SERIES_METHOD = "discords"


def methods() -> tuple[str, ...]:
    """Every method a series can be scored with: the series methods, the baselines and the
    registered detectors."""
    own = (*SERIES_METHODS, *BASELINES)
    return (*own, *(name for name in detector_names() if name not in own))


# The preset a detector may have for windows of a series; where it has none, its default.
SERIES_PRESET = "series"


def series_config(method: str, n_channels: int, preset: str | None = None, model: dict | None = None):
    """A registered detector's config for windows of a ``n_channels`` series: the preset (None:
    its ``SERIES_PRESET`` where it has one, else its default preset) with ``model`` overrides,
    and ``in_channels`` where it has that field."""
    detector = get_detector(method)
    if preset is None and SERIES_PRESET in detector.presets:
        preset = SERIES_PRESET
    overrides = dict(model or {})
    if "in_channels" in {f.name for f in dataclasses.fields(detector.config_cls)}:
        overrides.setdefault("in_channels", n_channels)
    return detector.config(preset, "", **overrides)


def fit_series(
    method: str,
    series,
    *,
    window: int | None = None,
    stride: int = 1,
    rule: str = "mean",
    preset: str | None = None,
    model: dict | None = None,
    train: TrainConfig | None = None,
    threshold: str | thresholds.ThresholdSpec = thresholds.DEFAULT_THRESHOLD,
    val_fraction: float = 0.2,
    seed: int = 0,
    precision: str | None = None,
    progress: bool = False,
) -> SeriesModel:
    """Fits ``method`` on a normal (or mostly normal) training series.

    The last ``val_fraction`` of the series is held out (in time): the detector's validation
    loss and the threshold come from it (from the training part itself when it is shorter
    than two windows).

    Args:
      method: ``discords`` (multi-length discords, closed form; model: ``DiscordsConfig``
        fields), a registered detector (``ae``, ``conv1d_ae``, ``rnn_ae``, ``vae``, ``anogan``,
        ...) or a baseline (``sub_pca``, ``kmeans``, ``knn``, ``discord``, ``zscore``).
      series: (T,) or (T, C) training series.
      window: window length (None: ``dominant_period`` of the series; ``discords`` picks its
        own lengths from the period and keeps this one for the VUS metrics).
      stride: step between training windows.
      rule: window scores -> point scores (``mean`` or ``max`` of the covering windows).
      preset, model: the detector's preset and config overrides.
      train: training settings of a deep detector (None: ``TrainConfig()``).
      threshold: a fittable threshold rule, applied to held-out point scores.
      seed: every random choice derives from it.

    Raises:
      ValueError: bad series, window, rule, method or threshold rule.
    """
    x = as_series(series, "training series")
    spec = thresholds.parse_threshold(threshold)
    if not spec.fittable:
        raise ValueError(f"threshold '{spec}' needs test labels or scores; use one of {thresholds.FITTABLE}")
    if rule not in POINT_RULES:
        raise ValueError(f"unknown point rule '{rule}'; expected one of {POINT_RULES}")
    if method not in methods():
        raise ValueError(f"unknown method '{method}'; expected one of {', '.join(methods())}")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    period = window  # what a series method sizes its own windows by (None: its choice)
    window = dominant_period(x) if window is None else int(window)
    cut = int(round(len(x) * (1 - val_fraction)))
    if len(x) - cut < 2 * window:  # too short a held-out stretch: calibrate on the training part
        cut = len(x)
    fit_part, held_out = x[:cut], x[cut:]
    if window < 2 or window > len(fit_part):
        raise ValueError(f"window {window} must be in 2..{len(fit_part)} (points of the training part)")
    offset = fit_part.min(0)
    scale = np.where(fit_part.max(0) > offset, fit_part.max(0) - offset, 1.0)
    skeleton = dict(method=method, window=window, stride=stride, rule=rule, offset=offset, scale=scale)
    calibrate_on = held_out if len(held_out) else fit_part
    calibration = "validation" if len(held_out) else "training"

    t0 = time.perf_counter()
    compile_seconds = 0.0
    if method == "zscore":
        fitted_model = None
    elif method in SERIES_METHODS:
        fitted_model = SERIES_METHODS[method](seed=seed, **(model or {})).fit(
            _scale(fit_part, offset, scale), period=period, normal=_scale(x, offset, scale)
        )
        # Windowed detectors whose scores join the candidates, fitted on the same series.
        fitted_model.members_ = [
            fit_series(
                member,
                x,
                window=period,
                stride=stride,
                train=train,
                seed=seed,
                precision=precision,
                progress=progress,
                val_fraction=val_fraction,
            )
            for member in fitted_model.config.members
        ]
        compile_seconds = sum(m.compile_seconds for m in fitted_model.members_)
    elif method in WINDOW_BASELINES:
        fitted_model = WINDOW_BASELINES[method](seed=seed).fit(
            sliding_windows(_scale(fit_part, offset, scale), window, stride)
        )
    else:
        detector = get_detector(method)
        train = train or TrainConfig()
        cfg = series_config(method, x.shape[1], preset, model)
        scaled = _scale(x, offset, scale)
        w_train = sliding_windows(scaled[:cut], window, stride)
        w_val = sliding_windows(scaled[cut:], window) if len(held_out) else None
        fitted_model = fitting.fit_calibrated(
            detector, cfg, train, w_train, w_val, spec=spec, seed=seed, precision=precision, progress=progress
        )
        compile_seconds = fitted_model.fitted.result.compile_seconds
    seconds = time.perf_counter() - t0 - compile_seconds
    partial = SeriesModel(
        **skeleton,
        model=fitted_model,
        threshold=np.nan,
        spec=spec,
        calibration_scores=np.zeros(0),
        calibration=calibration,
        fit_seconds=seconds,
        compile_seconds=compile_seconds,
    )
    scores = score_series(partial, calibrate_on, seed=seed, precision=precision)["score"]
    return dataclasses.replace(
        partial, threshold=thresholds.select_threshold(spec, val_scores=scores), calibration_scores=scores
    )


def score_series(
    model: SeriesModel, series, *, seed: int = 0, precision: str | None = None, progress: bool = False
) -> dict[str, np.ndarray]:
    """Point scores of a series (every window, stride 1).

    Returns:
      ``score`` (T,) point scores (higher = more anomalous), ``window_score`` (W,) the scores
      of the windows starting at points ``0..W-1`` (absent for ``zscore``) and, for
      reconstruction detectors, ``reconstruction`` (W, window*C) in the scaled units.

    Raises:
      ValueError: a bad series, or one shorter than the window.
    """
    x = model.scaled(series)
    if model.method == "zscore":
        return {"score": rolling_zscore(x, model.window)}
    if model.method in SERIES_METHODS:
        extra = {
            member.method: score_series(member, series, seed=seed, precision=precision)["score"]
            for member in model.model.members_
        }
        # A member's reference for the novelty: its scores of the held-out training stretch.
        reference = {member.method: member.calibration_scores for member in model.model.members_}
        return {"score": model.model.details(x, extra, reference)["score"]}
    if len(x) < model.window:
        raise ValueError(f"series of {len(x)} points is shorter than the window ({model.window})")
    windows = sliding_windows(x, model.window)
    if model.is_deep:
        detector = get_detector(model.method)
        out = fitting.score_details(
            detector, model.model.fitted, windows, seed=seed, precision=precision, progress=progress
        )
        window_scores = out["score"]
        extra = {"reconstruction": out["reconstruction"]} if "reconstruction" in out else {}
    else:
        window_scores, extra = model.model.score(windows), {}
    points = windows_to_points(window_scores, len(x), model.window, 1, model.rule)
    return {"score": points, "window_score": np.asarray(window_scores), **extra}
