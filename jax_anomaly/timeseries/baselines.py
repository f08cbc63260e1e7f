"""Simple baselines that every deep result on a series is reported beside (NumPy and
scikit-learn): PCA reconstruction of windows (Sub-PCA), distance to the nearest k-means
centroid of the training windows, distance to the nearest training window (the registered
``knn`` detector's blocked JAX distances), the matrix-profile discord (the same on z-normalised
windows), and a rolling z-score of each point against the window before it."""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from jax_anomaly.detectors import get_detector
from jax_anomaly.detectors.neighbors import znormalise


class SubPCA:
    """Reconstruction error of windows from the principal components that explain
    ``variance`` of the training windows' variance."""

    def __init__(self, variance: float = 0.9, seed: int = 0):
        self.variance, self.seed = variance, seed

    def fit(self, windows: np.ndarray) -> SubPCA:
        self.pca_ = PCA(n_components=self.variance, svd_solver="full", random_state=self.seed).fit(windows)
        return self

    def score(self, windows: np.ndarray) -> np.ndarray:
        recon = self.pca_.inverse_transform(self.pca_.transform(windows))
        return np.mean((windows - recon) ** 2, axis=1)


class KMeansWindows:
    """Distance of a window to its nearest centroid of ``k`` k-means clusters of the training
    windows (TSB-AD's KMeansAD, with k = 20)."""

    def __init__(self, k: int = 20, seed: int = 0):
        self.k, self.seed = k, seed

    def fit(self, windows: np.ndarray) -> KMeansWindows:
        k = min(self.k, len(windows))
        self.kmeans_ = KMeans(n_clusters=k, n_init=3, random_state=self.seed).fit(windows)
        return self

    def score(self, windows: np.ndarray) -> np.ndarray:
        return np.min(self.kmeans_.transform(windows), axis=1)


class NearestWindow:
    """Distance of a window to its ``k``-th nearest training window (k = 1: the discord
    distance of a semi-supervised matrix profile), as blocked matrix products on the device
    (the ``knn`` detector's fit and scorer)."""

    def __init__(self, k: int = 1, seed: int = 0):
        self.k = k
        del seed  # deterministic

    def _rows(self, windows: np.ndarray) -> np.ndarray:
        return np.asarray(windows, np.float32)

    def fit(self, windows: np.ndarray) -> NearestWindow:
        self.detector_ = get_detector("knn")
        cfg = self.detector_.config(k=self.k)
        self.fitted_ = self.detector_.fit(cfg, None, self._rows(windows), key=None, progress=False)
        return self

    def score(self, windows: np.ndarray) -> np.ndarray:
        return self.detector_.score(self.fitted_, self._rows(windows))["score"]


class Discord(NearestWindow):
    """The matrix profile's discord score against the training part: each window's distance
    to its nearest training window after both are z-normalised (mean 0, standard deviation 1),
    so a window scores by its shape, not its level or scale."""

    def _rows(self, windows: np.ndarray) -> np.ndarray:
        return znormalise(windows)


def rolling_zscore(series: np.ndarray, window: int) -> np.ndarray:
    """``|x_t - mean| / std`` of each point against the ``window`` points before it (fewer at
    the start; the first point scores 0), the largest over channels. Unsupervised: it needs no
    training series.

    Args:
      series: (T, C).
    Returns:
      (T,) float64.
    """
    x = np.asarray(series, np.float64)
    t = np.arange(len(x))
    cs = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, 0)])
    cs2 = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x * x, 0)])
    lo = np.maximum(t - window, 0)
    n = np.maximum(t - lo, 1)[:, None]
    mean = (cs[t] - cs[lo]) / n
    var = np.maximum((cs2[t] - cs2[lo]) / n - mean**2, 0.0)
    z = np.abs(x - mean) / np.sqrt(var + 1e-12 + 1e-6 * np.var(x, 0))
    z[0] = 0.0
    return z.max(axis=1)


# name -> window model class (``fit(windows)``, ``score(windows)``).
WINDOW_BASELINES = {"sub_pca": SubPCA, "kmeans": KMeansWindows, "knn": NearestWindow, "discord": Discord}
BASELINES = (*WINDOW_BASELINES, "zscore")
