"""Sliding windows over a series, the window length from its dominant period, and the rule
that maps window scores back to points (NumPy only)."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# The autocorrelation search of ``dominant_period`` (the rule TSB-AD uses to size windows):
# lags 3..400 of at most the first 20,000 points; a peak outside [3, 300] falls back to 125.
MAX_LAG = 400
MIN_PERIOD, MAX_PERIOD, FALLBACK_PERIOD = 3, 300, 125
POINT_RULES = ("mean", "max")


def as_series(x, what: str = "series", min_points: int = 2) -> np.ndarray:
    """A 1-D ``(T,)`` or 2-D ``(T, C)`` array as float32 ``(T, C)``.

    Raises:
      ValueError: other ranks, fewer than ``min_points`` points, or non-finite values.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < min_points or x.shape[1] < 1:
        raise ValueError(
            f"{what} must be (T,) or (T, C) with T >= {min_points} points, got shape {np.shape(x)}"
        )
    if not np.isfinite(x).all():
        raise ValueError(
            f"{what} contains NaN or inf (first at point {int(np.flatnonzero(~np.isfinite(x).all(1))[0])})"
        )
    return x


def autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Autocorrelation of a 1-D series at lags ``0..max_lag`` (FFT, biased estimator)."""
    x = np.asarray(x, np.float64) - np.mean(x)
    n = len(x)
    f = np.fft.rfft(x, n=2 * n)
    acov = np.fft.irfft(f * np.conj(f))[: max_lag + 1]
    return acov / acov[0] if acov[0] > 0 else np.zeros(max_lag + 1)


def dominant_period(series) -> int:
    """The lag of the highest local maximum of the autocorrelation (from lag 3), averaged over
    channels: the window length used when none is given. Series without a clear period (no
    local maximum, or one outside [3, 300]) get 125.

    Args:
      series: (T,) or (T, C).
    """
    x = as_series(series)[:20_000]
    max_lag = min(MAX_LAG, len(x) - 1)
    if max_lag <= MIN_PERIOD + 1:
        return FALLBACK_PERIOD
    acf = np.mean([autocorrelation(x[:, c], max_lag) for c in range(x.shape[1])], axis=0)[MIN_PERIOD:]
    peaks = np.flatnonzero((acf[1:-1] > acf[:-2]) & (acf[1:-1] > acf[2:])) + 1
    if not len(peaks):
        return FALLBACK_PERIOD
    best = int(peaks[np.argmax(acf[peaks])])
    return best + MIN_PERIOD if MIN_PERIOD <= best <= MAX_PERIOD else FALLBACK_PERIOD


def sliding_windows(series, length: int, stride: int = 1) -> np.ndarray:
    """``(W, length * C)`` windows, row ``i`` the points ``i*stride .. i*stride + length - 1``
    flattened time-major (point 0's channels first). W = (T - length) // stride + 1.

    Raises:
      ValueError: ``length`` < 1 or longer than the series, ``stride`` < 1.
    """
    x = as_series(series)
    if length < 1 or stride < 1:
        raise ValueError(f"window length and stride must be >= 1, got {length} and {stride}")
    if length > len(x):
        raise ValueError(f"window length {length} is longer than the series ({len(x)} points)")
    w = sliding_window_view(x, length, axis=0)[::stride]  # (W, C, length): a view
    return np.ascontiguousarray(w.transpose(0, 2, 1)).reshape(len(w), -1)


def n_windows(n_points: int, length: int, stride: int = 1) -> int:
    return (n_points - length) // stride + 1


def windows_to_points(scores, n_points: int, length: int, stride: int = 1, rule: str = "mean") -> np.ndarray:
    """Point scores from window scores: each point gets the ``rule`` (mean or max) of the
    scores of every window that covers it; points after the last window (stride > 1) take the
    last window's score.

    Args:
      scores: (W,) window scores, W = ``n_windows(n_points, length, stride)``.
    Returns:
      (n_points,) float64.
    """
    scores = np.asarray(scores, np.float64)
    if rule not in POINT_RULES:
        raise ValueError(f"unknown point rule '{rule}'; expected one of {POINT_RULES}")
    w = n_windows(n_points, length, stride)
    if scores.shape != (w,):
        raise ValueError(
            f"expected {w} window scores for {n_points} points (length {length}, stride {stride}), "
            f"got {scores.shape}"
        )
    t = np.arange(n_points)
    first = np.clip(-((length - 1 - t) // stride), 0, w - 1)  # ceil((t - length + 1) / stride)
    last = np.clip(t // stride, 0, w - 1)
    if rule == "mean":
        cs = np.concatenate([[0.0], np.cumsum(scores)])
        return (cs[last + 1] - cs[first]) / (last - first + 1)
    # max over [first, last]: a sparse table of range maxima (log W levels, no Python loop over points).
    table = [scores]
    while (1 << len(table)) <= w:
        prev, half = table[-1], 1 << (len(table) - 1)
        table.append(np.maximum(prev[:-half], prev[half:]))
    span = last - first + 1
    level = np.floor(np.log2(span)).astype(int)
    out = np.empty(n_points)
    for k in np.unique(level):
        sel = level == k
        out[sel] = np.maximum(table[k][first[sel]], table[k][last[sel] - (1 << k) + 1])
    return out
