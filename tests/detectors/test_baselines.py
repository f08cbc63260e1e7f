"""The baselines equal their references: kNN distances (blocked matrix products) against
scikit-learn's NearestNeighbors, the Isolation Forest walked in JAX against scikit-learn's own
scores, PCA against scikit-learn's reconstruction, ECOD against a NumPy transcription."""

import jax
import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import NearestNeighbors

from jax_anomaly.detectors import get_detector
from jax_anomaly.detectors.baselines import _seed
from jax_anomaly.detectors.neighbors import nearest_distances, reference_blocks

RNG = np.random.default_rng(0)
X_TRAIN = RNG.normal(size=(300, 6)).astype(np.float32)
X_TEST = np.r_[RNG.normal(size=(60, 6)), RNG.normal(4.0, 1.0, (10, 6))].astype(np.float32)


def _scores(name, x_train=X_TRAIN, x_test=X_TEST, key=0, **overrides):
    det = get_detector(name)
    fitted = det.fit(det.config(**overrides), None, x_train, key=jax.random.key(key), progress=False)
    return det.score(fitted, x_test)["score"]


@pytest.mark.parametrize("block_rows", [7, 64, 2048])
def test_knn_equals_nearest_neighbors_for_any_block_size(block_rows):
    ref = NearestNeighbors(n_neighbors=5).fit(X_TRAIN).kneighbors(X_TEST)[0]
    np.testing.assert_allclose(_scores("knn", block_rows=block_rows), ref[:, -1], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        _scores("knn", block_rows=block_rows, aggregate="mean"), ref.mean(1), rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(_scores("knn", block_rows=block_rows, k=1), ref[:, 0], rtol=1e-4, atol=1e-4)


def test_knn_with_fewer_training_rows_than_k_uses_the_farthest():
    scores = _scores("knn", x_train=X_TRAIN[:3])
    ref = NearestNeighbors(n_neighbors=3).fit(X_TRAIN[:3]).kneighbors(X_TEST)[0][:, -1]
    np.testing.assert_allclose(scores, ref, rtol=1e-4, atol=1e-4)


def test_nearest_distances_vmapped_is_padding_safe():
    blocks = reference_blocks(X_TRAIN[:10], block_rows=4)  # 3 blocks, 2 padding rows
    d = jax.vmap(lambda x: nearest_distances(blocks, x, 12))(X_TEST[:5])
    assert np.isinf(np.asarray(d)[:, -2:]).all() and np.isfinite(np.asarray(d)[:, :10]).all()


def test_iforest_walked_in_jax_equals_scikit_learn():
    scores = _scores("iforest", key=3)
    ref = (
        -IsolationForest(max_samples=256, random_state=_seed(jax.random.key(3)))
        .fit(X_TRAIN)
        .score_samples(X_TEST)
    )
    np.testing.assert_allclose(scores, ref, rtol=1e-5)


def test_pca_equals_scikit_learn_reconstruction():
    x_train = (RNG.normal(size=(300, 3)) @ RNG.normal(size=(3, 8)) + 0.1 * RNG.normal(size=(300, 8))).astype(
        np.float32
    )
    pca = PCA(n_components=0.9, svd_solver="full").fit(x_train)
    recon = pca.inverse_transform(pca.transform(X_TEST[:, :1].repeat(8, 1)))
    ref = ((X_TEST[:, :1].repeat(8, 1) - recon) ** 2).sum(1)
    np.testing.assert_allclose(_scores("pca", x_train, X_TEST[:, :1].repeat(8, 1)), ref, rtol=1e-3, atol=1e-4)


def test_ecod_equals_numpy_transcription():
    n = len(X_TRAIN)
    left = np.array([[(X_TRAIN[:, d] <= x[d]).sum() for d in range(6)] for x in X_TEST])
    right = np.array([[(X_TRAIN[:, d] >= x[d]).sum() for d in range(6)] for x in X_TEST])
    u_l, u_r = -np.log((left + 1) / (n + 1)), -np.log((right + 1) / (n + 1))
    from scipy.stats import skew

    u_s = np.where(np.sign(skew(X_TRAIN.astype(np.float64), axis=0)) < 0, u_l, u_r)
    ref = np.maximum(np.maximum(u_l.sum(1), u_r.sum(1)), u_s.sum(1))
    np.testing.assert_allclose(_scores("ecod"), ref, rtol=1e-5)


@pytest.mark.parametrize("name", ["knn", "iforest", "pca", "ecod"])
def test_baseline_separates_shifted_anomalies(name):
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.zeros(60), np.ones(10)]
    assert roc_auc_score(y, _scores(name)) > 0.9


def test_baselines_refuse_bad_settings_and_a_model_axis():
    with pytest.raises(ValueError, match="k must be >= 1"):
        get_detector("knn").config(k=0)
    with pytest.raises(ValueError, match="variance must be in"):
        get_detector("pca").config(variance=1.5)
    import jax_anomaly as ja

    with pytest.raises(ValueError, match="closed form"):
        ja.KNN(n_models=2).fit(X_TRAIN)


@pytest.mark.parametrize("name", ["KNN", "IsolationForest"])
def test_baseline_estimator_saves_loads_and_exports(name, tmp_path):
    import jax_anomaly as ja

    est = getattr(ja, name)().fit(X_TRAIN)
    est.save(tmp_path / "m")
    np.testing.assert_array_equal(
        ja.load(tmp_path / "m").decision_function(X_TEST), est.decision_function(X_TEST)
    )
    est.export(tmp_path / "e")
    scorer = jax.export.deserialize(bytearray((tmp_path / "e" / "scorer.stablehlo").read_bytes()))
    np.testing.assert_allclose(np.asarray(scorer.call(X_TEST)), est.decision_function(X_TEST), rtol=1e-5)


def test_baseline_through_the_cli_run_folder(tmp_path):
    import json

    from jax_anomaly.cli import main

    out = tmp_path / "run"
    assert (
        main(
            ["run", "--detector", "knn", "--dataset", "synthetic", "--out", str(out), "--quiet", "--no-plots"]
        )
        == 0
    )
    assert json.loads((out / "metrics.json").read_text())["metrics"]["auroc"] > 0.95
