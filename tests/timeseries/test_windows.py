"""Sliding windows, the point mapping and the dominant period."""

import numpy as np
import pytest

from jax_anomaly.timeseries.windows import dominant_period, n_windows, sliding_windows, windows_to_points


def test_windows_round_trip_multivariate():
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    w = sliding_windows(x, 5, stride=3)
    assert w.shape == (n_windows(20, 5, 3), 10) == (6, 10)
    for i, row in enumerate(w):
        np.testing.assert_array_equal(row.reshape(5, 2), x[3 * i : 3 * i + 5])
    # stride 1: the first step of every window, then the last window's tail, rebuild the series
    w1 = sliding_windows(x, 5)
    rebuilt = np.concatenate([w1[:, :2], w1[-1].reshape(5, 2)[1:]])
    np.testing.assert_array_equal(rebuilt, x)


@pytest.mark.parametrize("stride", [1, 3])
@pytest.mark.parametrize("rule", ["mean", "max"])
def test_windows_to_points_equals_loop(stride, rule):
    n, length = 31, 6
    rng = np.random.default_rng(0)
    scores = rng.random(n_windows(n, length, stride))
    got = windows_to_points(scores, n, length, stride, rule)
    reduce = np.mean if rule == "mean" else np.max
    for t in range(n):
        covering = [i for i in range(len(scores)) if i * stride <= t < i * stride + length]
        expected = reduce(scores[covering]) if covering else scores[-1]
        assert got[t] == pytest.approx(expected)


def test_windows_errors():
    with pytest.raises(ValueError, match="longer than the series"):
        sliding_windows(np.zeros(5), 6)
    with pytest.raises(ValueError, match="expected 3 window scores"):
        windows_to_points(np.zeros(4), 10, 8)
    with pytest.raises(ValueError, match="NaN or inf"):
        sliding_windows(np.array([0.0, np.nan, 1.0]), 2)


def test_dominant_period():
    t = np.arange(3000)
    rng = np.random.default_rng(0)
    assert dominant_period(np.sin(2 * np.pi * t / 37) + 0.1 * rng.standard_normal(3000)) == 37
    two = np.stack([np.sin(2 * np.pi * t / 60), np.cos(2 * np.pi * t / 60)], 1)
    assert dominant_period(two) == 60
    assert dominant_period(np.zeros(100)) == 125  # no period: the fallback
