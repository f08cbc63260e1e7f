import numpy as np
import pytest
from sklearn.metrics import f1_score

from jax_anomaly import thresholds
from jax_anomaly.thresholds import best_f1_threshold, parse_threshold, select_threshold

rng = np.random.default_rng(0)
VAL = rng.normal(size=500)
TEST = np.r_[rng.normal(size=300), rng.normal(3, 1, size=30)]
LABELS = np.r_[np.zeros(300), np.ones(30)].astype(int)


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("percentile:95", np.percentile(VAL, 95)),
        ("percentile", np.percentile(VAL, 95)),
        ("percentile:99", np.percentile(VAL, 99)),
        ("mean_std:3", VAL.mean() + 3 * VAL.std()),
        ("mean_std:2.5", VAL.mean() + 2.5 * VAL.std()),
        ("contamination:0.05", np.percentile(VAL, 95)),
        ("contamination:0.1", np.percentile(VAL, 90)),
        ("test_percentile:95", np.percentile(TEST, 95)),
    ],
)
def test_rules(spec, expected):
    assert select_threshold(
        parse_threshold(spec), val_scores=VAL, test_scores=TEST, test_labels=LABELS
    ) == pytest.approx(expected)


def test_best_f1_is_optimal_by_brute_force():
    t = select_threshold(parse_threshold("best_f1"), test_scores=TEST, test_labels=LABELS)
    brute = max(f1_score(LABELS, TEST > c) for c in np.r_[TEST, TEST.min() - 1])
    assert f1_score(LABELS, TEST > t) == pytest.approx(brute)
    assert parse_threshold("best_f1").oracle and not parse_threshold("percentile:95").oracle


def test_best_f1_with_ties():
    scores = np.array([1.0, 1.0, 2.0, 2.0, 3.0])
    labels = np.array([0, 0, 1, 0, 1])
    t = best_f1_threshold(scores, labels)
    brute = max(f1_score(labels, scores > c) for c in [0, 1, 2, 3])
    assert f1_score(labels, scores > t) == pytest.approx(brute)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("median", "unknown threshold"),
        ("percentile:100", "must be in \\(0, 100\\)"),
        ("percentile:abc", "not a number"),
        ("contamination:1.5", "must be in \\(0, 1\\)"),
        ("best_f1:3", "takes no value"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_threshold(spec)


def test_missing_scores():
    with pytest.raises(ValueError, match="needs validation scores"):
        select_threshold(parse_threshold("percentile:95"), test_scores=TEST)
    with pytest.raises(ValueError, match="needs test labels"):
        select_threshold(parse_threshold("best_f1"), test_scores=TEST)


def test_conformal_threshold_is_an_order_statistic_and_matches_pvalues():
    cal = np.arange(1.0, 20.0)  # n = 19: k = ceil(20 * 0.9) = 18
    assert thresholds.conformal_threshold(cal, 0.1) == 18.0
    scores = np.array([0.5, 17.9, 18.0, 18.1, 25.0])
    flagged = scores > thresholds.conformal_threshold(cal, 0.1)
    np.testing.assert_array_equal(flagged, thresholds.conformal_pvalues(cal, scores) <= 0.1)
    assert thresholds.select_threshold(parse_threshold("fpr:0.1"), val_scores=cal) == 18.0


def test_conformal_threshold_with_too_few_scores_flags_nothing():
    with pytest.warns(UserWarning, match="needs at least 19"):
        assert thresholds.conformal_threshold(np.ones(5), 0.05) == np.inf


def test_conformal_fpr_guarantee_over_many_seeds(synthetic_ae_estimator):
    """Fresh N(0, I) normal data through a fitted detector: over 200 seeds the rate of test
    normals flagged by fpr:0.1 stays at most 0.1 (and is not far below: 1/(n+1) of slack)."""
    est, scaler = synthetic_ae_estimator
    alpha, n_cal, n_test, seeds = 0.1, 49, 400, 200
    rng = np.random.default_rng(0)
    x = scaler.transform(rng.normal(size=(seeds * (n_cal + n_test), 20))).astype(np.float32)
    scores = est.decision_function(x).reshape(seeds, n_cal + n_test)
    fprs = []
    for row in scores:
        t = thresholds.conformal_threshold(row[:n_cal], alpha)
        fprs.append(np.mean(row[n_cal:] > t))
    mean, se = np.mean(fprs), np.std(fprs) / np.sqrt(seeds)
    assert mean <= alpha + 3 * se
    assert mean >= alpha - 1 / (n_cal + 1) - 3 * se
