"""Exported scorers (``est.export``): a StableHLO module that needs only ``jax`` to load,
any batch size, scores equal to ``decision_function`` (rtol 1e-5: the module is compiled
apart from the in-process scorer, float32 reassociation aside)."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from sklearn.preprocessing import MinMaxScaler, StandardScaler

import jax_anomaly as ja
from jax_anomaly.serving import load_exported

RTOL = 1e-5


def raw_data(seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(200, 6)) * 3 + 1).astype(np.float32)
    x_test = np.concatenate([rng.normal(size=(30, 6)) * 3 + 1, rng.normal(size=(7, 6)) * 3 + 9]).astype(
        np.float32
    )
    return x, x_test


def test_exported_scorer_needs_only_jax_and_takes_any_batch(tmp_path):
    x, x_test = raw_data()
    scaler = MinMaxScaler().fit(x)
    est = ja.AutoEncoder(preset="tiny", epochs=3, batch_size=32).fit(scaler.transform(x))
    est.export(tmp_path / "exported", scaler=scaler)
    np.save(tmp_path / "x.npy", x_test)
    np.save(tmp_path / "expected.npy", est.decision_function(scaler.transform(x_test)))
    np.save(tmp_path / "labels.npy", est.predict(scaler.transform(x_test)))
    script = textwrap.dedent(
        """
        import json, sys
        import jax, numpy as np
        scorer = jax.export.deserialize(bytearray(open("exported/scorer.stablehlo", "rb").read()))
        manifest = json.load(open("exported/manifest.json"))
        x = np.load("x.npy")
        whole = np.asarray(scorer.call(x))
        one = np.asarray(scorer.call(x[3:4]))
        np.testing.assert_allclose(whole, np.load("expected.npy"), rtol=float(sys.argv[1]))
        np.testing.assert_allclose(one, whole[3:4], rtol=float(sys.argv[1]))
        assert ((whole > manifest["threshold"]).astype(int) == np.load("labels.npy")).all()
        assert manifest["input"] == {"shape": [None, 6], "dtype": "float32"}
        assert "jax_anomaly" not in sys.modules
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(RTOL)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
    manifest = json.loads((tmp_path / "exported" / "manifest.json").read_text())
    assert manifest["platforms"] == ["cpu", "cuda"] and manifest["scaler"]["class"] == "MinMaxScaler"


@pytest.mark.parametrize(
    "cls,params",
    [
        (ja.VAE, {"n_models": 2}),  # Monte-Carlo draws in the graph; an ensemble's combination
        (ja.AnoGAN, {"model": {"search_steps": 20}}),  # the latent search
        (ja.FAnoGAN, {}),
    ],
)
def test_exported_scores_equal_the_estimator(cls, params, tmp_path):
    x, x_test = raw_data(1)
    scaler = MinMaxScaler().fit(x)
    xs, xs_test = scaler.transform(x), scaler.transform(x_test)
    est = cls(preset="tiny", epochs=2, batch_size=32, **params).fit(xs)
    scorer = load_exported(est.export(tmp_path, platforms=("cpu",)))
    np.testing.assert_allclose(scorer(xs_test), est.decision_function(xs_test), rtol=RTOL, atol=1e-6)
    assert scorer.threshold == est.threshold_


def test_deterministic_scorer_with_a_folded_standard_scaler(tmp_path):
    x, x_test = raw_data(2)
    scaler = StandardScaler().fit(x)
    est = ja.AdversarialAutoEncoder(preset="tiny", epochs=2, batch_size=32).fit(scaler.transform(x))
    scorer = load_exported(est.export(tmp_path, scaler=scaler, platforms=("cpu",)))
    np.testing.assert_allclose(
        scorer(x_test), est.decision_function(scaler.transform(x_test)), rtol=RTOL, atol=1e-6
    )
    np.testing.assert_array_equal(scorer.predict(x_test), est.predict(scaler.transform(x_test)))


def test_export_errors(tmp_path):
    x, _ = raw_data()
    with pytest.raises(ValueError, match="not fitted|fit"):
        ja.AutoEncoder().export(tmp_path / "a")
    est = ja.AutoEncoder(preset="tiny", epochs=1, batch_size=32).fit(MinMaxScaler().fit_transform(x))
    with pytest.raises(ValueError, match="not a per-feature affine"):
        est.export(tmp_path / "b", scaler=MinMaxScaler(clip=True).fit(x))
    with pytest.raises(ValueError, match="cannot transform 6 features"):
        est.export(tmp_path / "c", scaler=MinMaxScaler().fit(x[:, :3]))
    with pytest.raises(ValueError, match="not an exported scorer"):
        load_exported(tmp_path / "missing")
    scorer = load_exported(est.export(tmp_path / "d", platforms=("cpu",)))
    with pytest.raises(ValueError, match=r"takes \(N, 6\) arrays"):
        scorer(np.zeros((2, 5)))


@pytest.mark.parametrize(
    "cls,params",
    [
        (ja.AutoEncoder, {"model": {"score": "peak3_std"}}),  # a convolution, the pixel scale, top_k
        (ja.AutoEncoder, {"n_models": 3}),  # the ensemble's standardised mean
        (ja.AdversarialAutoEncoder, {}),
        (ja.FAnoGAN, {}),
    ],
)
def test_onnx_scores_equal_the_estimator(cls, params, tmp_path):
    """onnxruntime runs the exported model at any batch size; scores within 1e-5 (relative to
    the largest score: an ensemble's standardised scores pass through zero)."""
    ort = pytest.importorskip("onnxruntime")
    from sklearn.datasets import load_digits

    x = (load_digits().data / 16.0).astype(np.float32)  # 8x8 images: the image scores apply
    est = cls(preset="tiny", epochs=2, batch_size=32, **params).fit(x[:400])
    folder = est.export(tmp_path, format="onnx")
    session = ort.InferenceSession(str(folder / "scorer.onnx"))
    name = session.get_inputs()[0].name
    expected = est.decision_function(x[400:777])
    for rows in (slice(0, 377), slice(5, 6)):
        got = session.run(None, {name: x[400:777][rows]})[0]
        np.testing.assert_allclose(got, expected[rows], rtol=0, atol=1e-5 * np.abs(expected).max())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format"] == "ONNX (jax2onnx)" and manifest["threshold"] == est.threshold_


def test_onnx_export_refuses_scorers_with_random_draws(tmp_path):
    pytest.importorskip("jax2onnx")
    x, _ = raw_data()
    est = ja.VAE(preset="tiny", epochs=1, batch_size=32).fit(MinMaxScaler().fit_transform(x))
    with pytest.raises(ValueError, match="draws random numbers"):
        est.export(tmp_path, format="onnx")
    with pytest.raises(ValueError, match="unknown export format"):
        est.export(tmp_path, format="tflite")
