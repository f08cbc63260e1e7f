import json

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

import jax_anomaly as ja
from jax_anomaly.data import load_dataset

AE_ARGS = {"preset": "tiny", "epochs": 30, "batch_size": 32}


@pytest.fixture(scope="module")
def raw():
    """Unscaled synthetic data: N(0,1) normals and N(5,1) anomalies in 20-d."""
    return load_dataset("synthetic", seed=0)


@pytest.fixture(scope="module")
def pipe(raw):
    x_normal = raw.x_train[raw.y_train == 0]
    return make_pipeline(MinMaxScaler(), ja.AutoEncoder(**AE_ARGS, threshold="fpr:0.05")).fit(x_normal)


def test_pipeline_separates_anomalies(pipe, raw):
    scores = pipe.decision_function(raw.x_test)
    assert roc_auc_score(raw.y_test, scores) > 0.95
    pred = pipe.predict(raw.x_test)
    assert set(np.unique(pred)) <= {0, 1}
    np.testing.assert_array_equal(pred, (scores > pipe[-1].threshold_).astype(int))
    assert pred[raw.y_test == 1].mean() > 0.8  # anomalies are flagged
    assert pred[raw.y_test == 0].mean() < 0.2


def test_score_samples_is_decision_function_higher_is_anomalous(pipe, raw):
    est, x = pipe[-1], pipe[0].transform(raw.x_test)
    np.testing.assert_array_equal(est.score_samples(x), est.decision_function(x))
    assert est.score_samples(x)[raw.y_test == 1].mean() > est.score_samples(x)[raw.y_test == 0].mean()


def test_params_follow_sklearn_conventions():
    est = ja.AutoEncoder(**AE_ARGS, contamination=0.1)
    params = est.get_params()
    assert "detector" not in params and params["epochs"] == 30 and params["contamination"] == 0.1
    assert clone(est).get_params() == params
    est.set_params(epochs=5)
    assert est.epochs == 5
    generic = ja.AnomalyDetector("anogan", preset="tiny")
    assert generic.get_params()["detector"] == "anogan"
    assert clone(generic).name == "anogan"
    assert est.threshold_spec().kind == "contamination"


def test_save_load_roundtrip(pipe, raw, tmp_path):
    est = pipe[-1]
    est.save(tmp_path / "m", scaler=pipe[0])
    loaded = ja.load(tmp_path / "m")
    assert type(loaded) is ja.AutoEncoder and loaded.get_params() == est.get_params()
    assert loaded.threshold_ == est.threshold_
    x = raw.x_test
    np.testing.assert_array_equal(
        loaded.decision_function(loaded.scaler_.transform(x)), pipe.decision_function(x)
    )
    # the optimiser state comes back in its typed structure (training could continue)
    assert int(loaded.fitted_.state.step) == int(est.fitted_.state.step) > 0
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert (
        manifest["saved_with"]["jax_anomaly"] == ja.__version__
        and manifest["threshold"]["spec"] == "fpr:0.05"
    )


@pytest.mark.parametrize("cls", [ja.AnoGAN, ja.VAE, ja.AdversarialAutoEncoder, ja.FAnoGAN])
def test_estimator_roundtrip_every_detector(cls, digits, tmp_path):
    import jax

    est = cls(preset="tiny", epochs=2, batch_size=32).fit(digits.x_train, validation_data=digits.x_val)
    x = digits.x_test[:20]
    out = est.score_details(x)
    assert out["reconstruction"].min() >= 0 and out["reconstruction"].max() <= 1  # in [0, 1]
    est.save(tmp_path / "g")
    loaded = ja.load(tmp_path / "g")
    assert type(loaded) is cls
    np.testing.assert_array_equal(loaded.decision_function(x), out["score"])
    # the whole train state (every phase's optimiser state) comes back in its structure
    leaves = [jax.tree_util.tree_leaves_with_path(e.fitted_.state) for e in (loaded, est)]
    assert [path for path, _ in leaves[0]] == [path for path, _ in leaves[1]]
    for (_, a), (_, b) in zip(*leaves, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls", [ja.AnoGAN, ja.VAE])
def test_a_sample_scores_the_same_in_any_batch(cls, digits):
    """Random draws at scoring time (AnoGAN's initial latents, the VAE's Monte-Carlo
    samples) come from the sample's own values, not its position."""
    est = cls(preset="tiny", epochs=1, batch_size=64).fit(digits.x_train, validation_data=digits.x_val)
    x = digits.x_test[:16]
    whole = est.decision_function(x)
    reversed_ = est.decision_function(x[::-1])[::-1]
    np.testing.assert_allclose(whole, reversed_, rtol=1e-5)
    np.testing.assert_allclose(est.decision_function(x[3:4]), whole[3:4], rtol=1e-5)


def test_same_seed_same_scores_bit_for_bit_other_seed_differs(synthetic):
    def scores(seed):
        est = ja.AutoEncoder(**{**AE_ARGS, "epochs": 5}, seed=seed).fit(synthetic.x_train)
        return est, est.decision_function(synthetic.x_test)

    (a, sa), (_, sb), (c, sc) = scores(0), scores(0), scores(1)
    np.testing.assert_array_equal(sa, sb)
    assert not np.array_equal(sa, sc)
    import jax

    first, other = jax.tree.leaves(a.fitted_.params)[-1], jax.tree.leaves(c.fitted_.params)[-1]
    assert not np.allclose(first, other)  # different initialisations


def test_not_fitted_and_bad_settings_raise(synthetic):
    with pytest.raises(ValueError, match="not fitted yet"):
        ja.AutoEncoder().predict(synthetic.x_test)
    with pytest.raises(ValueError, match="needs test scores or labels"):
        ja.AutoEncoder(threshold="test_percentile:95").fit(synthetic.x_train)
    with pytest.raises(ValueError, match="unknown detector 'nope'"):
        ja.AnomalyDetector("nope").fit(synthetic.x_train)
    with pytest.raises(ValueError, match="unknown matmul precision"):
        ja.AutoEncoder(precision="fp8").fit(synthetic.x_train)


@pytest.mark.parametrize(
    "x, message",
    [
        # scikit-learn's own input checks and messages (validate_data)
        (np.full((10, 20), np.nan, np.float32), "Input X contains NaN"),
        (np.zeros((10, 20, 1), np.float32), "Found array with dim 3"),
        (np.zeros((0, 20), np.float32), "0 sample\\(s\\)"),
        (np.array([["a"] * 20] * 10), "could not convert string to float"),
    ],
)
def test_bad_training_data(x, message):
    with pytest.raises(ValueError, match=message):
        ja.AutoEncoder(**AE_ARGS).fit(x)


def test_bad_scoring_data(pipe):
    est = pipe[-1]
    with pytest.raises(ValueError, match="X has 5 features, but AutoEncoder is expecting 20 features"):
        est.decision_function(np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="Input X contains infinity"):
        est.predict(np.full((3, 20), np.inf, np.float32))
    with pytest.raises(ValueError, match="Expected a 2-dimensional container|Expected 2D array"):
        est.decision_function(np.zeros(20, np.float32))


def test_missing_or_corrupt_saved_model(pipe, tmp_path):
    with pytest.raises(ValueError, match="no saved model"):
        ja.load(tmp_path / "nothing")
    pipe[-1].save(tmp_path / "m")
    (tmp_path / "m" / "state.msgpack").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="corrupt"):
        ja.load(tmp_path / "m")
    (tmp_path / "m" / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt"):
        ja.load(tmp_path / "m")
