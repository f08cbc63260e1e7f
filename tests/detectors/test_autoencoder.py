import jax
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors import autoencoder as ae
from jax_anomaly.detectors import get_detector


@pytest.fixture(scope="module")
def synthetic_ae(synthetic):
    train = TrainConfig(epochs=50, batch_size=32)
    cfg = ae.PRESETS["synthetic"]
    return ae.DETECTOR.fit(
        cfg, train, synthetic.x_train, synthetic.x_val, key=jax.random.key(0), progress=False
    )


def test_synthetic_auroc(synthetic, synthetic_ae):
    scores = ae.DETECTOR.score(synthetic_ae, synthetic.x_test)["score"]
    assert roc_auc_score(synthetic.y_test, scores) > 0.95


def test_digits_auroc(digits, fast_train):
    fitted = ae.DETECTOR.fit(
        ae.PRESETS["digits"], fast_train, digits.x_train, digits.x_val, key=jax.random.key(1), progress=False
    )
    assert roc_auc_score(digits.y_test, ae.DETECTOR.score(fitted, digits.x_test)["score"]) > 0.9


def test_score_is_reconstruction_error(synthetic, synthetic_ae):
    out = ae.DETECTOR.score(synthetic_ae, synthetic.x_test[:7])
    expected = np.mean((out["reconstruction"] - synthetic.x_test[:7]) ** 2, axis=1)
    np.testing.assert_allclose(out["score"], expected, rtol=1e-5)


def test_chunked_scoring_equals_one_chunk(synthetic, synthetic_ae):
    import dataclasses

    small = dataclasses.replace(synthetic_ae, config=dataclasses.replace(synthetic_ae.config, score_batch=7))
    np.testing.assert_allclose(
        ae.DETECTOR.score(small, synthetic.x_test)["score"],
        ae.DETECTOR.score(synthetic_ae, synthetic.x_test)["score"],
        rtol=1e-5,
    )


def test_bce_loss_matches_formula():
    x = np.array([[0.0, 1.0, 0.25]], np.float32)
    p = np.array([[0.1, 0.8, 0.5]], np.float32)
    expected = -np.mean(x * np.log(p) + (1 - x) * np.log(1 - p))
    np.testing.assert_allclose(ae.per_sample_loss(p, x, "bce")[0], expected, rtol=1e-5)


@pytest.mark.parametrize(
    "x, message",
    [
        (np.zeros((4, 3), np.float32), "has 3 features; the detector was fitted on 20"),
        (np.zeros((4,), np.float32), "shape \\(N, D\\)"),
        (np.zeros((0, 20), np.float32), "empty"),
        (np.full((2, 20), np.nan, np.float32), "NaN or inf"),
        (np.array([["a"] * 20]), "numeric"),
    ],
)
def test_score_rejects_bad_input(synthetic_ae, x, message):
    with pytest.raises(ValueError, match=message):
        ae.DETECTOR.score(synthetic_ae, x)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"latent": 0}, "layer sizes"),
        ({"activation": "swish2"}, "unknown activation"),
        ({"loss": "l1"}, "unknown loss"),
        ({"loss": "bce", "output_activation": "linear"}, "needs output_activation 'sigmoid'"),
        ({"depth": 3}, "has no option"),
    ],
)
def test_config_validation(overrides, message):
    with pytest.raises(ValueError, match=message):
        get_detector("ae").config("tiny", **overrides)
