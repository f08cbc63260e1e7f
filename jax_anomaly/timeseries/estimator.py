"""``SeriesDetector``: a scikit-learn-style estimator for a 1-D or 2-D series, over
``fit_series`` / ``score_series`` (the path the CLI and the experiment take)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from jax_anomaly.config import TrainConfig
from jax_anomaly.data.series import label_events
from jax_anomaly.thresholds import DEFAULT_THRESHOLD
from jax_anomaly.timeseries.detect import DEFAULT_SERIES_METHOD, SeriesModel, fit_series, score_series


class SeriesDetector(BaseEstimator):
    """Anomaly detection on a time series with any registered detector or baseline, on
    sliding windows whose scores map back to points.

    Args:
      method: ``discords`` (default: discords at several window lengths, closed form, no
        training; ``model`` takes ``DiscordsConfig`` fields), a registered detector
        (``conv1d_ae``, ``rnn_ae``, ``ae``, ``vae``, ``aae``, ``fanogan``, ``anogan``) or a
        baseline (``sub_pca``, ``kmeans``, ``knn``, ``discord``, ``zscore``).
      window: window length (None: the training series' dominant period; ``discords`` takes
        its lengths as multiples of it).
      stride: step between training windows.
      point_rule: ``mean`` or ``max`` of the windows covering a point.
      preset, model: the detector's preset and config overrides (dict).
      epochs, batch_size, learning_rate: training (epochs None: the steps-based default).
      threshold: a fittable rule, applied to point scores of the held-out last
        ``val_fraction`` of the training series.
      seed: every random choice derives from it.
      progress: show progress lines.

    Example::

        det = SeriesDetector().fit(train_series)                # (T,) or (T, C)
        scores = det.decision_function(test_series)            # (T_test,) per point
        flags = det.predict(test_series)                       # 1 = anomalous point
    """

    def __init__(
        self,
        method: str = DEFAULT_SERIES_METHOD,
        *,
        window: int | None = None,
        stride: int = 1,
        point_rule: str = "mean",
        preset: str | None = None,
        model: dict | None = None,
        epochs: int | None = None,
        batch_size: int = 128,
        learning_rate: float = 1e-3,
        threshold: str = DEFAULT_THRESHOLD,
        val_fraction: float = 0.2,
        seed: int = 0,
        progress: bool = False,
    ):
        self.method = method
        self.window = window
        self.stride = stride
        self.point_rule = point_rule
        self.preset = preset
        self.model = model
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.threshold = threshold
        self.val_fraction = val_fraction
        self.seed = seed
        self.progress = progress

    def fit(self, X, y=None) -> SeriesDetector:
        """Fits on a (mostly) normal series ``X`` (T,) or (T, C); ``y`` is ignored."""
        del y
        self.model_: SeriesModel = fit_series(
            self.method,
            X,
            window=self.window,
            stride=self.stride,
            rule=self.point_rule,
            preset=self.preset,
            model=self.model,
            train=TrainConfig(
                epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate
            ),
            threshold=self.threshold,
            val_fraction=self.val_fraction,
            seed=self.seed,
            progress=self.progress,
        )
        self.window_ = self.model_.window
        self.threshold_ = self.model_.threshold
        return self

    def _fitted(self) -> SeriesModel:
        if not hasattr(self, "model_"):
            raise ValueError("this SeriesDetector is not fitted yet; call fit(series) first")
        return self.model_

    def decision_function(self, X) -> np.ndarray:
        """Point anomaly scores (T,), higher = more anomalous."""
        return score_series(self._fitted(), X, seed=self.seed, progress=self.progress)["score"]

    score_samples = decision_function

    def predict(self, X) -> np.ndarray:
        """1 for points scoring above ``threshold_``, else 0 (T,)."""
        return (self.decision_function(X) > self._fitted().threshold).astype(np.int64)

    def events(self, X) -> list[tuple[int, int]]:
        """``(start, end_exclusive)`` of each run of flagged points."""
        return [(s, e) for s, e, _ in label_events(self.predict(X))]

    def stream(self):
        """A ``StreamScorer`` of the fitted model (deep detectors without random draws)."""
        from jax_anomaly.timeseries.streaming import StreamScorer

        return StreamScorer(self._fitted())
