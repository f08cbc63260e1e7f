"""Series metrics on hand-computed cases."""

import numpy as np
import pytest

from jax_anomaly.timeseries.metrics import (
    point_adjusted_f1,
    range_curves,
    range_precision_recall,
    series_metrics,
    vus,
)

# Ten points, anomaly at 4..5; point 3 (a buffer point at width 2) ranks first.
LABELS = np.array([0, 0, 0, 0, 1, 1, 0, 0, 0, 0])
SCORES = np.array([0, 0.1, 0.2, 0.95, 0.9, 0.8, 0.3, 0.4, 0.05, 0.01])


def test_range_ap_by_hand():
    # width 0: thresholds take {3}: TP 0; {3,4}: TPR 1/2, precision 1/2; {3,4,5}: TPR 1, precision 2/3.
    assert range_curves(LABELS, SCORES, 0)["ap"] == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    # width 2: point 3 carries the soft label b = sqrt(1 - 1/2); P' = 2 + b/2 once 3 is flagged.
    b = np.sqrt(0.5)
    p_new = 2 + b / 2
    tpr = [b / p_new, (1 + b) / p_new, 1.0]
    precision = [b, (1 + b) / 2, (2 + b) / 3]
    expected = tpr[0] * precision[0] + (tpr[1] - tpr[0]) * precision[1] + (tpr[2] - tpr[1]) * precision[2]
    assert range_curves(LABELS, SCORES, 2)["ap"] == pytest.approx(expected)
    # width 1 has no buffer (width // 2 = 0): VUS-PR is the mean of the three widths.
    assert vus(LABELS, SCORES, 2)["vus_pr"] == pytest.approx((2 * (0.25 + 1 / 3) + expected) / 3)


def test_perfect_and_inverted_scores():
    perfect = vus(LABELS, LABELS + 0.01 * np.arange(10), 4)
    assert perfect["vus_pr"] == pytest.approx(1.0) and perfect["vus_roc"] == pytest.approx(1.0)
    inverted = vus(LABELS, -LABELS.astype(float) + 0.001 * np.arange(10), 4)
    assert inverted["vus_pr"] < 0.4


def test_range_precision_recall_by_hand():
    labels = np.zeros(20, int)
    labels[2:6] = 1  # 4 points
    labels[10:12] = 1
    pred = np.zeros(20, int)
    pred[4:8] = 1  # overlaps half of the first range; 2 of its 4 points are anomalies
    r = range_precision_recall(labels, pred, alpha=0.2)
    # recall: range 1: 0.2 * 1 + 0.8 * 0.5; range 2: 0 -> mean 0.3; precision: 2/4 of the one predicted range.
    assert r["range_recall"] == pytest.approx(0.3)
    assert r["range_precision"] == pytest.approx(0.5)
    assert r["range_f1"] == pytest.approx(2 * 0.3 * 0.5 / 0.8)


def test_point_adjustment_inflates_random_scores():
    rng = np.random.default_rng(0)
    labels = np.zeros(5000, int)
    for s in (500, 2000, 3500):
        labels[s : s + 200] = 1
    random = rng.random(5000)
    assert point_adjusted_f1(labels, random) > 0.7  # why PA-F1 is reported only beside VUS-PR
    assert vus(labels, random, 50)["vus_pr"] < 0.25


def test_series_metrics_and_errors():
    m = series_metrics(LABELS, SCORES, window=1, threshold=0.75)
    assert m["auc_roc"] == pytest.approx(7 / 8)  # each anomaly outranks 7 of the 8 normals
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="both anomalous and normal"):
        vus(np.zeros(10), SCORES, 2)
    with pytest.raises(ValueError, match="NaN or inf"):
        vus(LABELS, np.full(10, np.nan), 2)
