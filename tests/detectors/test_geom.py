"""The transformation-prediction detector: its transformations, its Dirichlet fit, its scores."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors import geom


@pytest.fixture(scope="module")
def digits_geom(digits):
    return geom.DETECTOR.fit(
        geom.PRESETS["tiny"],
        TrainConfig(epochs=30, batch_size=32),
        digits.x_train,
        key=jax.random.key(0),
        progress=False,
    )


def test_transformations_are_what_they_say():
    img = np.arange(36, dtype=np.float32).reshape(1, 6, 6)
    cfg = geom.GeomConfig(flips=True, shift=2, rotations=4)
    out = np.asarray(geom.transform_images(jnp.asarray(img), cfg))
    assert out.shape == (cfg.n_transforms, 1, 6, 6) == (72, 1, 6, 6)
    np.testing.assert_array_equal(out[0, 0], img[0])  # the identity first
    for r in range(4):
        np.testing.assert_array_equal(out[r, 0], np.rot90(img[0], r))
    padded = np.pad(img[0], 2, mode="reflect")
    # k = ((flip * 3 + row shift) * 3 + column shift) * 4 + turns; shifts ordered 0, +s, -s
    down = padded[0:6, 2:8]  # content moved down 2 rows, reflected at the top
    np.testing.assert_array_equal(out[(1 * 3 + 0) * 4, 0], down)
    np.testing.assert_array_equal(out[(1 * 3 + 0) * 4, 0][2:], img[0][:4])
    right_up = padded[4:10, 0:6]  # +2 columns (right), -2 rows (up)
    np.testing.assert_array_equal(out[(2 * 3 + 1) * 4, 0], right_up)
    mirrored = out[(1 * 9 + 0) * 4 + 1, 0]  # flipped, no shift, one quarter turn
    np.testing.assert_array_equal(mirrored, np.rot90(img[0][:, ::-1], 1))
    half = np.asarray(geom.transform_images(jnp.asarray(img), geom.GeomConfig(flips=False, rotations=2)))
    np.testing.assert_array_equal(half[1, 0], np.rot90(img[0], 2))


def test_dirichlet_fit_recovers_known_concentrations():
    alpha = np.array([[2.0, 5.0, 1.0], [0.5, 0.5, 3.0]])
    rng = np.random.default_rng(0)
    samples = np.stack([rng.dirichlet(a, size=20000) for a in alpha])  # (2, N, 3)
    mean_log = np.log(samples).mean(axis=1)
    fitted = np.asarray(geom.dirichlet_mle(jnp.asarray(mean_log, jnp.float32)))
    np.testing.assert_allclose(fitted, alpha, rtol=0.05)
    y = jnp.asarray([-3.0, -0.5, 0.0, 2.0])
    np.testing.assert_allclose(jax.scipy.special.digamma(geom.inverse_digamma(y)), y, atol=1e-4)


def test_separates_digits_and_calibrates_on_the_training_rows(digits, digits_geom):
    det, fitted = geom.DETECTOR, digits_geom
    assert [h.get("phase") for h in fitted.result.history][-2:] == ["calibrate", "standardise"]
    out = det.score(fitted, digits.x_test)
    for name in geom.SCORES:
        assert roc_auc_score(digits.y_test, out[name]) > 0.9, name
    assert geom.GeomConfig().score == "dirichlet+mahalanobis"  # the default (test_score_choice)
    # The centres are the mean features of each transformation over the training rows.
    model = geom.build_model(fitted.config, digits.x_train.shape[1])
    copies = geom._copies(fitted.config, jnp.asarray(digits.x_train))
    _, features = model.apply({"params": fitted.params["net"]}, copies)
    np.testing.assert_allclose(
        fitted.params["centres"], np.asarray(features).mean(axis=1), rtol=1e-4, atol=1e-5
    )
    assert fitted.params["alpha"].shape == (4, 4) and np.all(np.asarray(fitted.params["alpha"]) > 0)
    # mahalanobis: each copy against a Gaussian of its transformation's training features.
    feats = np.asarray(features, np.float64)  # (K, N, F)
    _, test_features = model.apply(
        {"params": fitted.params["net"]}, geom._copies(fitted.config, jnp.asarray(digits.x_test[:20]))
    )
    expected = np.zeros(20)
    for k in range(feats.shape[0]):
        mean, cov = feats[k].mean(axis=0), np.cov(feats[k].T, bias=True)
        cov += (geom.RIDGE * np.trace(cov) / cov.shape[0] + 1e-6) * np.eye(cov.shape[0])
        delta = np.asarray(test_features[k], np.float64) - mean
        expected += np.einsum("nf,fg,ng->n", delta, np.linalg.inv(cov), delta)
    np.testing.assert_allclose(out["mahalanobis"][:20], expected, rtol=2e-3)


def test_score_choice(digits, digits_geom):
    fitted = dataclasses.replace(digits_geom, config=dataclasses.replace(digits_geom.config, score="centres"))
    out = geom.DETECTOR.score(fitted, digits.x_test[:50])
    np.testing.assert_array_equal(out["score"], out["centres"])
    # A '+'-joined score: the mean of its parts, each standardised over the training rows.
    both = dataclasses.replace(fitted.config, score="dirichlet+mahalanobis")
    joined = dataclasses.replace(fitted, config=both)
    train = geom.DETECTOR.score(joined, digits.x_train)
    test = geom.DETECTOR.score(joined, digits.x_test)
    expected = np.mean(
        [(test[n] - train[n].mean()) / train[n].std() for n in ("dirichlet", "mahalanobis")], axis=0
    )
    np.testing.assert_allclose(test["score"], expected, rtol=1e-3, atol=1e-4)
    assert roc_auc_score(digits.y_test, test["score"]) > 0.9
    # A model fitted before the Mahalanobis score existed (no precision matrices): a clear error.
    old = {k: v for k, v in joined.params.items() if k != "precision"}
    with pytest.raises(ValueError, match="fitted before that score existed"):
        geom.DETECTOR.score(dataclasses.replace(joined, params=old), digits.x_test[:5])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rotations": 3}, "rotations must be one of"),
        ({"flips": False, "rotations": 1}, "at least 2 transformations"),
        ({"channels": (4, 8), "strides": (1,)}, "one per entry of channels"),
        ({"strides": (1, 3, 1, 2, 1)}, "strides must be 1 or 2"),
        ({"score": "max"}, "unknown score"),
        ({"score": "ce+max"}, "unknown score"),
        ({"score": "ce+ce"}, "unknown score"),
        ({"shift": -1}, "shift must be >= 0"),
    ],
)
def test_config_validation(overrides, message):
    with pytest.raises(ValueError, match=message):
        geom.GeomConfig(**overrides)


def test_refuses_rows_that_are_not_square_images():
    with pytest.raises(ValueError, match="square single-channel images"):
        geom.build_model(geom.PRESETS["tiny"], 20)
    with pytest.raises(ValueError, match="smaller than the image side"):
        geom.build_model(geom.GeomConfig(shift=8), 64)


def test_estimator_saves_loads_and_exports(tmp_path, digits):
    from sklearn.base import clone

    import jax_anomaly as ja
    from jax_anomaly.serving import load_exported

    est = ja.TransformationDetector(preset="tiny", epochs=2, batch_size=32, seed=0)
    assert est.fit(digits.x_train) is est and est.n_features_in_ == 64
    scores = est.decision_function(digits.x_test[:40])
    again = clone(est).fit(digits.x_train).decision_function(digits.x_test[:40])
    np.testing.assert_array_equal(again, scores)  # seeded: a clone refits to the same model
    assert set(np.unique(est.predict(digits.x_test))) <= {0, 1}
    est.save(tmp_path / "model")
    np.testing.assert_array_equal(ja.load(tmp_path / "model").decision_function(digits.x_test[:40]), scores)
    est.export(tmp_path / "exported")
    np.testing.assert_allclose(
        load_exported(tmp_path / "exported")(digits.x_test[:40]), scores, rtol=1e-4, atol=1e-3
    )
