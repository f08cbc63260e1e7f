import jax
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors import anogan, fanogan


@pytest.fixture(scope="module")
def digits_conv_fanogan(digits):
    cfg = fanogan.FAnoGANConfig(latent=8, arch="conv", channels=(8, 16))
    det = fanogan.DETECTOR
    train = TrainConfig(epochs=15, batch_size=32)
    return fanogan.DETECTOR.fit(
        cfg,
        train,
        det.to_input(digits.x_train),
        det.to_input(digits.x_val),
        key=jax.random.key(0),
        progress=False,
    )


def test_encoder_phase_leaves_the_gan_unchanged(digits_conv_fanogan):
    f = digits_conv_fanogan
    for a, b in zip(
        jax.tree.leaves(f.params["generator"]), jax.tree.leaves(f.state["gan"].generator.params), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    phases = [h["phase"] for h in f.result.history]
    assert phases == ["gan"] * 15 + ["encoder"] * 15


def test_score_is_izi_f_and_separates(digits, digits_conv_fanogan):
    x = fanogan.DETECTOR.to_input(digits.x_test)
    out = fanogan.DETECTOR.score(digits_conv_fanogan, x)
    np.testing.assert_allclose(out["residual"], np.mean((x - out["reconstruction"]) ** 2, axis=1), rtol=1e-4)
    np.testing.assert_allclose(out["score"], out["residual"] + out["feature"], rtol=1e-6)
    assert roc_auc_score(digits.y_test, out["score"]) > 0.9


def test_same_gan_scores_with_the_latent_search(digits, digits_conv_fanogan):
    x = fanogan.DETECTOR.to_input(digits.x_test[:40])
    gan = fanogan.as_anogan(digits_conv_fanogan, search_steps=30, search_lr=0.05)
    assert gan.config.search_steps == 30 and gan.config.latent == 8 and gan.config.arch == "conv"
    out = anogan.DETECTOR.score(gan, x, key=jax.random.key(1))
    assert out["score"].shape == (40,) and np.all(np.isfinite(out["score"]))


def test_config_has_no_search_fields():
    """f-AnoGAN shares the GAN's fields, not AnoGAN's search settings it would never read."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(fanogan.FAnoGANConfig)}
    assert {"latent", "g_hidden", "d_hidden", "kappa"} <= names
    assert not names & {"search_steps", "search_lr", "lam", "loss", "search_init", "search_schedule"}


def test_config_validation():
    with pytest.raises(ValueError, match="kappa"):
        fanogan.FAnoGANConfig(kappa=-1.0)
    with pytest.raises(ValueError, match="encoder_epochs"):
        fanogan.FAnoGANConfig(encoder_epochs=0)
