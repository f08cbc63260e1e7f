"""``ja.sweep``: a grid of settings of one estimator as one program; model k equals that
estimator's settings fitted alone on the same split."""

import numpy as np
import pytest

import jax_anomaly as ja
from jax_anomaly import fitting
from jax_anomaly.detectors import get_detector

TINY = {"hidden": (16,), "latent": 2}
SCORE_RTOL = 1e-5  # float32 reassociation between the vmapped and the single program


def blobs(seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.random((240, 8)) * 0.5).astype(np.float32)
    x_test = np.concatenate([rng.random((40, 8)) * 0.5, 0.5 + rng.random((40, 8)) * 0.5]).astype(np.float32)
    return x, x_test, np.r_[np.zeros(40), np.ones(40)]


@pytest.fixture(scope="module")
def fitted_sweep():
    x, x_test, y = blobs()
    est = ja.VAE(epochs=3, batch_size=64, model=TINY)
    return ja.sweep(est, beta=[0.5, 2.0], seed=[0, 3]).fit(x), x, x_test, y


def test_sweep_points_scores_and_results(fitted_sweep):
    sw, _, x_test, y = fitted_sweep
    assert sw.points_ == [
        {"beta": 0.5, "seed": 0},
        {"beta": 0.5, "seed": 3},
        {"beta": 2.0, "seed": 0},
        {"beta": 2.0, "seed": 3},
    ]
    scores = sw.decision_function(x_test)
    assert scores.shape == (4, 80)
    for k, est in enumerate(sw.estimators_):
        assert est.model_config().beta == sw.points_[k]["beta"] and est.seed == sw.points_[k]["seed"]
        np.testing.assert_allclose(est.decision_function(x_test), scores[k], rtol=SCORE_RTOL)
        assert est.decision_scores_.shape == (240,)
    rows = sw.results(x_test, y)
    assert [(r["beta"], r["seed"]) for r in rows] == [(p["beta"], p["seed"]) for p in sw.points_]
    assert min(r["auroc"] for r in rows) > 0.8  # the anomalies sit outside the normal cube
    assert all(r["epochs"] == 3 and r["diverged"] is None for r in rows)
    assert sw.predict(x_test).shape == (4, 80)


def test_sweep_model_equals_it_fitted_alone_on_the_same_split(fitted_sweep):
    """Model 3 (beta 2, seed 3): its own initialisation, batches and VAE sampling draws."""
    sw, x, x_test, _ = fitted_sweep
    base = sw.estimators_[0]
    _, x_train, x_val, _ = base._split(x, None)
    point = sw.estimators_[3]
    alone = fitting.fit_calibrated(
        get_detector("vae"),
        point.model_config(),
        point.train_config(),
        x_train,
        x_val,
        spec=point.threshold_spec(),
        seed=3,
    )
    assert alone.threshold == pytest.approx(point.threshold_, rel=SCORE_RTOL)
    ref = fitting.score_details(get_detector("vae"), alone.fitted, x_test, seed=3)["score"]
    np.testing.assert_allclose(sw.decision_function(x_test)[3], ref, rtol=SCORE_RTOL)


@pytest.mark.parametrize(
    "grid,match",
    [
        ({}, "at least one setting"),
        ({"beta": []}, "no values"),
        ({"epochs": [2, 3]}, "not a setting of 'vae' that can vary"),
        ({"latent": [2, 4]}, "not a float setting"),
    ],
)
def test_sweep_rejects_what_cannot_share_a_program(grid, match):
    x, _, _ = blobs()
    with pytest.raises(ValueError, match=match):
        ja.sweep(ja.VAE(epochs=1, model=TINY), **grid).fit(x[:40])


def test_sweep_needs_an_estimator_and_a_fit():
    with pytest.raises(TypeError, match="estimator of jax_anomaly"):
        ja.sweep(object(), seed=[0])
    with pytest.raises(ValueError, match="not fitted"):
        ja.sweep(ja.AutoEncoder, seed=[0, 1]).decision_function(np.zeros((2, 3)))
