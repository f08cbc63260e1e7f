"""PyOD's conventions on the estimators, persistence by pickle, extreme values, DataFrames,
CSV files, and a default that works on a first try."""

import io
import json
import pickle

import cloudpickle
import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

import jax_anomaly as ja
from jax_anomaly.cli import main
from jax_anomaly.detectors import get_detector
from jax_anomaly.estimators import estimator_names


def pyod_data(n, d, contamination=0.1, seed=0):
    """PyOD's ``generate_data``: inliers 0.3 N(0, 1) + 10, outliers U(-10, 10); y = 1 outlier."""
    rng = np.random.default_rng(seed)
    n_out = int(n * contamination)
    x = np.r_[0.3 * rng.standard_normal((n - n_out, d)) + 10, rng.uniform(-10, 10, (n_out, d))]
    return x, np.r_[np.zeros(n - n_out), np.ones(n_out)]


@pytest.fixture(scope="module")
def fitted():
    x, _ = pyod_data(200, 5)
    return ja.AutoEncoder(preset="tiny", epochs=5, batch_size=32, contamination=0.1).fit(
        MinMaxScaler().fit_transform(x)
    )


def test_training_scores_labels_and_fit_predict(fitted):
    x = MinMaxScaler().fit_transform(pyod_data(200, 5)[0])
    assert fitted.decision_scores_.shape == (200,) and fitted.labels_.shape == (200,)
    np.testing.assert_allclose(fitted.decision_scores_, fitted.decision_function(x), rtol=1e-6)
    np.testing.assert_array_equal(fitted.labels_, (fitted.decision_scores_ > fitted.threshold_).astype(int))
    refit = ja.AutoEncoder(preset="tiny", epochs=5, batch_size=32, contamination=0.1)
    np.testing.assert_array_equal(refit.fit_predict(x), fitted.labels_)
    # nothing held out: the threshold comes from the training scores, still in X's order
    whole = ja.AutoEncoder(preset="tiny", epochs=2, batch_size=32, validation_fraction=0).fit(x)
    np.testing.assert_allclose(whole.decision_scores_, whole.decision_function(x), rtol=1e-6)


def test_predict_proba_linear_and_unify_follow_pyod(fitted):
    from scipy.special import erf

    x = MinMaxScaler().fit_transform(pyod_data(100, 5, seed=1)[0])
    s, train = fitted.decision_function(x), fitted.decision_scores_
    linear = fitted.predict_proba(x)
    expected = np.clip((s - train.min()) / (train.max() - train.min()), 0, 1)
    np.testing.assert_allclose(linear[:, 1], expected, rtol=1e-6)
    unify = fitted.predict_proba(x, method="unify")
    np.testing.assert_allclose(
        unify[:, 1], np.clip(erf((s - train.mean()) / (train.std() * np.sqrt(2))), 0, 1)
    )
    for p in (linear, unify):
        np.testing.assert_allclose(p.sum(axis=1), 1.0) and np.testing.assert_array_less(-1e-12, p)
    probs, conf = fitted.predict_proba(x, return_confidence=True)
    np.testing.assert_array_equal(probs, linear)
    with pytest.raises(ValueError, match="'linear' or 'unify'"):
        fitted.predict_proba(x, method="softmax")


def test_confidence_is_pyods_excede(fitted):
    from scipy.stats import binom

    x = MinMaxScaler().fit_transform(pyod_data(100, 5, seed=1)[0])
    conf = fitted.predict_confidence(x)
    s, train, n = fitted.decision_function(x), fitted.decision_scores_, len(fitted.decision_scores_)
    post = (1 + np.array([np.count_nonzero(train <= v) for v in s])) / (2 + n)
    expected = 1 - binom.cdf(n - int(n * 0.1), n, post)
    expected = np.where(s > fitted.threshold_, expected, 1 - expected)
    np.testing.assert_allclose(conf, expected)
    labels, conf2 = fitted.predict(x, return_confidence=True)
    np.testing.assert_array_equal(labels, fitted.predict(x)) and np.testing.assert_array_equal(conf, conf2)
    assert ((0 <= conf) & (conf <= 1)).all()


def test_predict_with_rejection_abstains_where_confidence_is_low(fitted):
    x = MinMaxScaler().fit_transform(pyod_data(100, 5, seed=1)[0])
    labels, conf = fitted.predict(x, return_confidence=True)
    for T in (1.0, 4.0, 32):
        out, stats = fitted.predict_with_rejection(x, T=T, return_stats=True)
        reject = 2 * np.abs(conf - 0.5) <= 1 - 2 * np.exp(-T)
        np.testing.assert_array_equal(out, np.where(reject, -2, labels))
        assert stats["rejection_rate"] == pytest.approx(reject.mean())
        assert 0 <= stats["training_rejection_rate"] <= 1
    # a larger T demands more confidence: it never rejects fewer
    assert (fitted.predict_with_rejection(x, T=1.0) == -2).sum() <= (
        fitted.predict_with_rejection(x, T=32) == -2
    ).sum()
    with pytest.raises(ValueError, match="T must be > 0"):
        fitted.predict_with_rejection(x, T=0)


@pytest.mark.parametrize(
    "est",
    [
        lambda: ja.AutoEncoder(preset="tiny", epochs=2, model={"latent": 3}, contamination=0.1, seed=4),
        lambda: ja.AnomalyDetector("knn", model={"k": 3}, threshold="percentile:90"),
        lambda: ja.AnomalyDetector(preset="tiny"),
    ],
)
def test_a_loaded_estimator_has_the_fitted_ones_parameters(est, tmp_path):
    x, _ = pyod_data(120, 4)
    model = est().fit(x)
    loaded = ja.load(model.save(tmp_path / "m"))
    assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.decision_function(x), model.decision_function(x))


def test_outlier_detector_tag_not_fitted_and_contamination_range():
    est = ja.AutoEncoder()
    assert est.__sklearn_tags__().estimator_type == "outlier_detector"
    with pytest.raises(NotFittedError):
        est.predict(np.zeros((2, 3)))
    for bad in (0.0, 0.6, -0.1):
        with pytest.raises(ValueError, match=r"contamination must be in \(0, 0.5\]"):
            ja.AutoEncoder(contamination=bad).fit(np.zeros((20, 3)))


@pytest.mark.parametrize("name", estimator_names())
def test_pickle_joblib_cloudpickle_round_trips(name, digits):
    pipe = make_pipeline(MinMaxScaler(), getattr(ja, name)(preset="tiny", epochs=2, batch_size=32))
    pipe.fit(digits.x_train)
    scores = pipe.decision_function(digits.x_test)
    buf = io.BytesIO()
    joblib.dump(pipe, buf)
    buf.seek(0)
    for copy in (pickle.loads(pickle.dumps(pipe)), pickle.loads(cloudpickle.dumps(pipe)), joblib.load(buf)):
        np.testing.assert_array_equal(copy.decision_function(digits.x_test), scores)
        trains = get_detector(copy[-1].name).trains  # a baseline has no train state
        assert type(copy[-1]) is type(pipe[-1]) and (copy[-1].fitted_.state is not None) == trains


def test_extreme_rows_are_ranked_first_not_an_error(tmp_path):
    """Rows of 1e25..1e34 (float32 overflows in the score) complete the CLI run, saturate at
    float32's largest value and rank first."""
    rng = np.random.default_rng(0)
    extreme = np.logspace(25, 34, 10)[:, None] * np.ones((1, 4))
    x = np.r_[rng.normal(size=(300, 4)), rng.normal(4, 1, (15, 4)), extreme]
    y = np.r_[np.zeros(300), np.ones(25)]
    path = tmp_path / "extreme.csv"
    pd.DataFrame({**{f"f{i}": x[:, i] for i in range(4)}, "label": y}).to_csv(path, index=False)
    out = tmp_path / "run"
    assert (
        main(["run", "--dataset", f"csv:{path}", "--epochs", "5", "--out", str(out), "--quiet", "--no-plots"])
        == 0
    )
    rows = pd.read_csv(out / "scores.csv").sort_values("score", ascending=False)
    n_extreme = int((rows["source_row"] >= 315).sum())
    assert n_extreme >= 1 and (rows["source_row"].iloc[:n_extreme] >= 315).all()
    assert (rows["predicted"].iloc[:n_extreme] == 1).all() and np.isfinite(rows["score"]).all()
    assert json.loads((out / "metrics.json").read_text())["metrics"]["auroc"] > 0.9


def test_beyond_float32_has_its_own_message():
    with pytest.raises(ValueError, match="beyond float32's range"):
        ja.AutoEncoder(epochs=1).fit(np.r_[np.zeros((5, 2)), [[1e300, 0.0]]])


def test_dataframes_as_scikit_learn_takes_them(digits):
    cols = [f"p{i}" for i in range(digits.x_train.shape[1])]
    df = pd.DataFrame(digits.x_train, columns=cols)
    est = ja.AutoEncoder(preset="tiny", epochs=2, batch_size=32).fit(df)
    assert list(est.feature_names_in_) == cols
    with pytest.raises(ValueError, match="feature names"):
        est.decision_function(df[cols[::-1]])
    odd = df.copy()
    odd["p0"] = pd.array((df["p0"] * 16).round().astype(int), dtype="Int64")  # nullable integers
    odd["p1"] = df["p1"] > 0.5  # bools
    assert np.isfinite(ja.AutoEncoder(preset="tiny", epochs=1).fit(odd).decision_function(odd)).all()
    bad = {
        "complex": (digits.x_train.astype(complex), ValueError, "Complex data not supported"),
        "sparse": (sp.csr_matrix(digits.x_train), TypeError, "dense data is required"),
        "no features": (np.zeros((10, 0)), ValueError, "0 feature"),
    }
    for x, error, message in bad.values():
        with pytest.raises(error, match=message):
            ja.AutoEncoder(epochs=1).fit(x)


def test_the_default_trains_small_data_to_convergence():
    """PyOD's data (600 x 20, 10 % contamination in training) through a pipeline with every
    default: 20 epochs (100 steps) gave AUROC 0.32; the default length (>= 2,000 steps) works."""
    x, _ = pyod_data(600, 20)
    x_test, y_test = pyod_data(400, 20, seed=1)
    model = make_pipeline(MinMaxScaler(), ja.AutoEncoder()).fit(x)
    assert roc_auc_score(y_test, model.decision_function(x_test)) > 0.95
    assert len(model[-1].fitted_.result.history) == 400  # 5 steps per epoch


@pytest.mark.parametrize(
    "text, message",
    [
        ("a,b,label\n1,2,0\n3,,1\n", "missing value (empty field) in column 'b' (line 3)"),
        ("a,b,label\n1,2,0\n3,nan,1\n", "(NaN or inf) in column 'b' (line 3)"),
        ("a,b,label\n1,2,0\n\n3,x,1\n", "non-numeric value 'x' in column 'b' (line 4)"),
    ],
)
def test_csv_errors_name_the_file_line(tmp_path, text, message):
    path = tmp_path / "d.csv"
    path.write_text(text)
    from jax_anomaly.data import load_dataset

    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_dataset(f"csv:{path}", label_column="label")


def test_csv_with_excel_bom_and_trailing_blank_line(tmp_path):
    from jax_anomaly.data import load_dataset

    rows = "".join(f"{i % 7},{i % 5},{int(i % 10 == 0)}\r\n" for i in range(40))
    path = tmp_path / "excel.csv"
    path.write_bytes(("\ufeffa,b,label\r\n" + rows + "\r\n").encode("utf-8"))
    ds = load_dataset(f"csv:{path}", label_column="label")
    assert len(ds.x_train) + len(ds.x_test) == 40 and ds.x_train.shape[1] == 2
    assert sorted(ds.test_rows) == sorted(set(ds.test_rows)) and ds.test_rows.max() < 40


def test_a_given_data_dir_that_does_not_exist_is_an_error(capsys):
    assert main(["run", "--dataset", "mnist", "--data-dir", "/no/such/dir", "--quiet"]) == 2
    assert "data directory /no/such/dir does not exist" in capsys.readouterr().err
