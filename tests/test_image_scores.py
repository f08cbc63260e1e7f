"""Image scores beyond pixel MSE: structure on hand-made images, maps, and the detectors'
``score`` option."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors import get_detector
from jax_anomaly.image_scores import IMAGE_SCORES, image_score, reconstruction_score
from jax_anomaly.training.losses import per_sample_loss

SIDE = 12
POOLED = ("mean3", "mean5", "gauss3", "gauss5", "pyramid")


def _images():
    """A 3x3 blob and the same energy spread as 9 isolated pixels, against a blank reconstruction."""
    blob, noise = np.zeros((SIDE, SIDE), np.float32), np.zeros((SIDE, SIDE), np.float32)
    blob[4:7, 4:7] = 0.5
    for i, j in [(1, 1), (1, 5), (1, 9), (5, 1), (5, 5), (5, 9), (9, 1), (9, 5), (9, 9)]:
        noise[i, j] = 0.5
    return blob.reshape(-1), noise.reshape(-1), np.zeros(SIDE * SIDE, np.float32)


@pytest.mark.parametrize("name", POOLED)
def test_a_coherent_blob_scores_higher_than_the_same_energy_as_noise(name):
    blob, noise, blank = _images()
    assert float(image_score("mse", blob, blank, SIDE)[0]) == pytest.approx(
        float(image_score("mse", noise, blank, SIDE)[0])
    )
    assert float(image_score(name, blob, blank, SIDE)[0]) > 1.5 * float(
        image_score(name, noise, blank, SIDE)[0]
    )


@pytest.mark.parametrize("name", IMAGE_SCORES)
def test_maps_have_the_image_shape_and_average_to_the_score(name):
    blob, _, blank = _images()
    score, amap = jax.jit(image_score, static_argnums=(0, 3))(name, blob, blank + 0.1, SIDE)
    assert amap.shape == (SIDE * SIDE,) and float(score) == pytest.approx(float(jnp.mean(amap)), rel=1e-5)
    assert float(image_score(name, blank, blank, SIDE)[0]) == pytest.approx(0.0, abs=1e-6)  # perfect: 0


def test_the_loss_score_is_the_training_loss():
    rng = np.random.default_rng(0)
    x, r = rng.uniform(size=(2, 64)).astype(np.float32)
    for loss in ("mse", "bce"):
        score, amap = reconstruction_score("loss", loss, x, r)
        assert float(score) == pytest.approx(float(per_sample_loss(r, x, loss)), rel=1e-6) and amap.shape == (
            64,
        )


@pytest.mark.parametrize("name, extra", [("ae", {}), ("aae", {}), ("vae", {})])
def test_detectors_score_with_any_image_score_and_return_maps(name, extra, digits):
    det = get_detector(name)
    cfg = det.config("tiny", score="gauss3", **extra)
    fitted = det.fit(
        cfg, TrainConfig(epochs=3, batch_size=32), digits.x_train, key=jax.random.key(0), progress=False
    )
    out = det.score(fitted, digits.x_test[:20], key=jax.random.key(1))
    assert out["map"].shape == (20, 64)
    np.testing.assert_allclose(
        out["score"] if name != "aae" else out["recon_error"], out["map"].mean(1), rtol=1e-4
    )


@pytest.mark.parametrize("name", ["fanogan", "anogan"])
def test_gan_detectors_score_the_residual_with_an_image_score(name, digits):
    """Same trained GAN (and encoder), scored with the default and with image scores: 'mse'
    is the default's mean squared residual on the [-1, 1] scale; 'mean3' has a map of the
    image's shape whose mean is the residual part of the score."""
    det = get_detector(name)
    cfg = det.config("tiny")
    x = det.to_input(digits.x_train)
    fitted = det.fit(cfg, TrainConfig(epochs=2, batch_size=32), x, key=jax.random.key(0), progress=False)
    x_test = det.to_input(digits.x_test[:12])

    def score(**override):
        f = dataclasses.replace(fitted, config=dataclasses.replace(cfg, **override))
        return det.score(f, x_test, key=jax.random.key(1))

    default, mse, mean3 = score(), score(score="mse"), score(score="mean3")
    if name == "fanogan":  # mse reproduces the default exactly
        np.testing.assert_allclose(mse["score"], default["score"], rtol=1e-5)
    else:  # the tutorial search loss's residual is the same mean squared residual
        np.testing.assert_allclose(mse["residual"], default["residual"], rtol=1e-5)
    assert mean3["map"].shape == (12, 64) and "map" not in default
    np.testing.assert_allclose(mean3["residual"], mean3["map"].mean(1), rtol=1e-5)
    assert not np.allclose(mean3["score"], default["score"])
    with pytest.raises(ValueError, match="unknown score"):
        det.config("tiny", score="median")


def test_the_default_score_is_the_protocols_pick_on_28x28_images_and_the_loss_elsewhere():
    ae = get_detector("ae")
    assert ae.config(dataset="mnist").score == "mean3" and ae.config(dataset="fashion_mnist").score == "mean3"
    assert ae.config(dataset="synthetic").score == "loss" and ae.config(dataset="digits").score == "loss"
    assert ae.config_cls().score == "loss" and get_detector("aae").config_cls().score == "loss"
    det = get_detector("ae")
    with pytest.raises(ValueError, match="unknown score"):
        det.config("tiny", score="median")
    fitted = det.fit(
        det.config("tiny", score="mean3"),
        TrainConfig(epochs=1),
        np.zeros((8, 20), np.float32),
        key=jax.random.key(0),
        progress=False,
    )
    with pytest.raises(ValueError, match="square single-channel images; got 20 features"):
        det.score(fitted, np.zeros((4, 20), np.float32))
