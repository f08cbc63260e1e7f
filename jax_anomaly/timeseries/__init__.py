"""Time series: the default multi-length discord detector, sliding windows, windowed
detectors and baselines, series metrics (VUS) and the streaming scorer."""

from jax_anomaly.timeseries.baselines import BASELINES, rolling_zscore
from jax_anomaly.timeseries.detect import (
    DEFAULT_SERIES_METHOD,
    SeriesModel,
    fit_series,
    methods,
    score_series,
    series_config,
)
from jax_anomaly.timeseries.discords import Discords, DiscordsConfig
from jax_anomaly.timeseries.estimator import SeriesDetector
from jax_anomaly.timeseries.metrics import (
    point_adjusted_f1,
    range_precision_recall,
    series_metrics,
    vus,
)
from jax_anomaly.timeseries.windows import dominant_period, sliding_windows, windows_to_points

__all__ = [
    "BASELINES",
    "DEFAULT_SERIES_METHOD",
    "Discords",
    "DiscordsConfig",
    "SeriesDetector",
    "SeriesModel",
    "dominant_period",
    "fit_series",
    "methods",
    "point_adjusted_f1",
    "range_precision_recall",
    "rolling_zscore",
    "score_series",
    "series_config",
    "series_metrics",
    "sliding_windows",
    "vus",
    "windows_to_points",
]
