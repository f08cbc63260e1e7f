"""The default tabular detector: its members equal NumPy/scikit-learn references (a training
row scored without itself), the ensemble separates a small case, and bad tables get clear
errors or a stated behaviour."""

import jax
import numpy as np
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

import jax_anomaly as ja
from jax_anomaly.detectors import DEFAULT_DETECTOR, get_detector
from jax_anomaly.detectors.baselines import _seed
from jax_anomaly.detectors.tabular import MEMBERS, TabularConfig, tabular_fit

RNG = np.random.default_rng(1)
X_TRAIN = (RNG.normal(size=(400, 5)) * [1, 2, 0.5, 3, 1] + [0, 10, -3, 1, 5]).astype(np.float32)
X_TEST = np.r_[
    RNG.normal(size=(80, 5)) * [1, 2, 0.5, 3, 1] + [0, 10, -3, 1, 5],
    RNG.normal(size=(20, 5)) * 0.5 + [5, 10, -3, 1, 5],  # off in the first feature
].astype(np.float32)
Y_TEST = np.r_[np.zeros(80), np.ones(20)]
TINY = get_detector("tabular").config("tiny")


def _fit(cfg=TINY, x=X_TRAIN, key=0):
    det = get_detector("tabular")
    return det, det.fit(cfg, None, x, key=jax.random.key(key), progress=False)


def _standardised(x):
    std = X_TRAIN.std(0)
    return (x - X_TRAIN.mean(0)) / std


def test_default_detector_is_the_tabular_ensemble():
    assert DEFAULT_DETECTOR == "tabular"
    est = ja.AnomalyDetector()
    assert est.name == "tabular" and est.get_params()["detector"] is None
    assert type(ja.TabularDetector()).__name__ == "TabularDetector"


def test_members_equal_references_and_scores_are_their_weighted_robust_z():
    det, fitted = _fit()
    out = det.score(fitted, X_TEST)
    z = np.asarray(out["members"])
    raw = z * fitted.params["spread"] + fitted.params["centre"]
    xs_train, xs_test = _standardised(X_TRAIN), _standardised(X_TEST)
    d = NearestNeighbors(n_neighbors=TINY.k_far).fit(xs_train).kneighbors(xs_test)[0]
    np.testing.assert_allclose(raw[:, 0], d[:, 0], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(raw[:, 1], d.mean(1), rtol=1e-3, atol=1e-3)
    bag_rows = xs_train[np.asarray(fitted.params["bag_index"])]  # (B, P, D)
    nearest = np.sqrt(((xs_test[:, None, None] - bag_rows[None]) ** 2).sum(-1)).min(-1)
    np.testing.assert_allclose(raw[:, 2], nearest.mean(1), rtol=1e-3, atol=1e-3)
    forest = IsolationForest(
        n_estimators=TINY.trees,
        max_samples=TINY.tree_rows,
        random_state=_seed(jax.random.split(jax.random.key(0), 4)[2]),
    ).fit(xs_train)
    np.testing.assert_allclose(raw[:, 3], -forest.score_samples(xs_test), rtol=1e-4)
    w = np.asarray(TINY.weights) / sum(TINY.weights)
    np.testing.assert_allclose(out["score"], z @ w, rtol=1e-5, atol=1e-5)


def test_calibration_scores_each_training_row_without_itself():
    params = tabular_fit(TINY, X_TRAIN, jax.random.key(0))
    xs = _standardised(X_TRAIN)
    d = NearestNeighbors(n_neighbors=2).fit(xs).kneighbors(xs)[0][:, 1]  # the nearest other row
    q1, med, q3 = np.percentile(d, [25, 50, 75])
    np.testing.assert_allclose(params["centre"][0], med, rtol=1e-3)
    np.testing.assert_allclose(params["spread"][0], q3 - q1, rtol=1e-3)


def test_separates_shifted_rows_and_is_deterministic_for_a_seed():
    est = ja.AnomalyDetector(preset="tiny", seed=3).fit(X_TRAIN)
    scores = est.decision_function(X_TEST)
    assert roc_auc_score(Y_TEST, scores) > 0.95
    again = ja.AnomalyDetector(preset="tiny", seed=3).fit(X_TRAIN).decision_function(X_TEST)
    np.testing.assert_array_equal(scores, again)


def test_feature_scale_does_not_matter():
    """It standardises by the training rows itself: raw units score like scaled ones."""
    det, fitted = _fit()
    scaled = X_TRAIN * 1000.0
    _, fitted_scaled = _fit(x=scaled)
    np.testing.assert_allclose(
        det.score(fitted, X_TEST)["score"],
        det.score(fitted_scaled, X_TEST * 1000.0)["score"],
        rtol=1e-3,
        atol=1e-3,
    )


def test_bad_tables():
    det = get_detector("tabular")
    # constant columns carry no information and are kept at zero, not divided by zero
    x = np.c_[X_TRAIN, np.full(len(X_TRAIN), 7.0, np.float32)]
    fitted = det.fit(TINY, None, x, key=jax.random.key(0), progress=False)
    s = np.asarray(det.score(fitted, np.c_[X_TEST, np.full(len(X_TEST), 7.0, np.float32)])["score"])
    assert np.isfinite(s).all() and roc_auc_score(Y_TEST, s) > 0.95
    # more features than rows: distances and trees still work
    wide = RNG.normal(size=(30, 200)).astype(np.float32)
    fitted = det.fit(TINY, None, wide, key=jax.random.key(0), progress=False)
    far = np.r_[RNG.normal(size=(10, 200)), RNG.normal(3.0, 1.0, (10, 200))].astype(np.float32)
    assert roc_auc_score(np.r_[np.zeros(10), np.ones(10)], det.score(fitted, far)["score"]) > 0.9
    # NaN and a single row: clear errors
    with pytest.raises(ValueError, match="NaN"):
        ja.AnomalyDetector().fit(np.where(np.arange(5) == 2, np.nan, X_TRAIN[:50]))
    with pytest.raises(ValueError, match="at least 2 training rows"):
        det.fit(TINY, None, X_TRAIN[:1], key=jax.random.key(0), progress=False)


@pytest.mark.parametrize(
    "field, value", [("k_far", 0), ("tree_rows", 1), ("weights", (1, 1, 1)), ("weights", (0, 0, 0, 0))]
)
def test_config_rejects_bad_settings(field, value):
    with pytest.raises(ValueError, match=field):
        TabularConfig(**{field: value})


def test_reference_and_calibration_caps_subsample():
    cfg = TabularConfig(
        k_far=5, bags=4, bag_rows=8, trees=10, tree_rows=32, max_reference_rows=100, calibration_rows=50
    )
    det, fitted = _fit(cfg)
    assert len(fitted.params["ref_index"]) == 100 and len(MEMBERS) == 4
    s = det.score(fitted, X_TEST)["score"]
    assert roc_auc_score(Y_TEST, s) > 0.9
