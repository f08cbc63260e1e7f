"""Image scores beyond pixel MSE: structure on hand-made images, maps, and the detectors'
``score`` option."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_anomaly import fitting, thresholds
from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors import get_detector
from jax_anomaly.image_scores import (
    IMAGE_SCORES,
    PEAK_FRACTION,
    PIXEL_SCALE,
    aggregate,
    image_score,
    pixel_scale,
    reconstruction_score,
    split_scale,
)
from jax_anomaly.training.losses import per_sample_loss

SIDE = 12
POOLED = ("mean3", "mean5", "gauss3", "gauss5", "pyramid", "peak3")


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
def test_maps_have_the_image_shape_and_aggregate_to_the_score(name):
    blob, _, blank = _images()
    score, amap = jax.jit(image_score, static_argnums=(0, 3))(name, blob, blank + 0.1, SIDE)
    assert amap.shape == (SIDE * SIDE,) and float(score) == pytest.approx(
        float(aggregate(name, amap)), rel=1e-5
    )
    if name != "peak3":  # every other score is its map's mean
        assert float(score) == pytest.approx(float(jnp.mean(amap)), rel=1e-5)
    assert float(image_score(name, blank, blank, SIDE)[0]) == pytest.approx(0.0, abs=1e-6)  # perfect: 0


def test_peak3_is_the_top_fraction_of_the_mean3_map_and_ranks_a_local_defect_first():
    """A 2x2 defect against a faint residual over the whole image: the mean of the mean3 map
    ranks the faint one higher, peak3 (its top 10 % of pixels, by hand here) the defect."""
    blank = np.zeros(SIDE * SIDE, np.float32)
    defect = np.zeros((SIDE, SIDE), np.float32)
    defect[5:7, 5:7] = 0.6
    defect, faint = defect.reshape(-1), np.full(SIDE * SIDE, 0.12, np.float32)
    for x in (defect, faint):
        peak, amap = image_score("peak3", x, blank, SIDE)
        mean3, mean3_map = image_score("mean3", x, blank, SIDE)
        np.testing.assert_allclose(amap, mean3_map)
        k = int(np.ceil(PEAK_FRACTION * SIDE * SIDE))
        assert float(peak) == pytest.approx(float(np.sort(np.asarray(amap))[-k:].mean()), rel=1e-6)
    mean3 = [float(image_score("mean3", x, blank, SIDE)[0]) for x in (defect, faint)]
    peak = [float(image_score("peak3", x, blank, SIDE)[0]) for x in (defect, faint)]
    assert mean3[1] > mean3[0] and peak[0] > 1.5 * peak[1]


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


def test_a_standardised_score_weighs_each_pixel_by_the_held_out_normal_maps():
    """Pixel 0 is badly reconstructed in every normal image: the same residual there scores
    lower than at a pixel normals always reconstruct; the scale is bounded by the mean rms."""
    rng = np.random.default_rng(0)
    normal_maps = np.full((50, SIDE * SIDE), 1e-4, np.float32)
    normal_maps[:, 0] = rng.uniform(0.5, 1.5, size=50)
    scale = pixel_scale(normal_maps)
    rms = np.sqrt(normal_maps.astype(np.float64).mean(0))
    np.testing.assert_allclose(scale, np.square(rms + rms.mean()), rtol=1e-6)
    blank = np.zeros(SIDE * SIDE, np.float32)
    at_noisy, at_quiet = blank.copy(), blank.copy()
    at_noisy[0], at_quiet[SIDE * 6 + 6] = 0.5, 0.5
    raw = [float(reconstruction_score("mse", "mse", x, blank)[0]) for x in (at_noisy, at_quiet)]
    std = [float(reconstruction_score("mse_std", "mse", x, blank, scale)[0]) for x in (at_noisy, at_quiet)]
    assert raw[0] == pytest.approx(raw[1]) and std[1] > 10 * std[0]
    score, amap = reconstruction_score("loss_std", "mse", at_quiet, blank, scale)
    np.testing.assert_allclose(amap, np.square(at_quiet) / scale, rtol=1e-6)
    assert float(score) == pytest.approx(float(jnp.mean(amap)), rel=1e-6)
    with pytest.raises(ValueError, match="at least one sample"):
        pixel_scale(np.zeros((0, 4)))


@pytest.mark.parametrize("name", ["ae", "aae", "vae", "fanogan", "anogan"])
def test_detectors_fit_the_pixel_scale_and_score_standardised_on_the_device(name, digits):
    """``mean3_std``: fitting keeps the scale of the held-out maps in the parameters, and the
    device scorer's residual part is the mean of the undivided map over that scale."""
    det = get_detector(name)
    cfg = det.config("tiny", score="mean3_std")
    model = fitting.fit_calibrated(
        det,
        cfg,
        TrainConfig(epochs=2, batch_size=32),
        digits.x_train,
        digits.x_val,
        spec=thresholds.parse_threshold("mean_std:3"),
    )
    params, scale = split_scale(model.fitted.params)
    unscaled = dataclasses.replace(model.fitted, params=params)
    val_maps = fitting.score_details(det, unscaled, digits.x_val)["map"]
    np.testing.assert_allclose(np.asarray(scale), pixel_scale(val_maps), rtol=1e-5)
    raw, std = (fitting.score_details(det, f, digits.x_test[:16]) for f in (unscaled, model.fitted))
    part = {"ae": "score", "vae": "score", "aae": "recon_error"}.get(name, "residual")
    np.testing.assert_allclose(std[part], (raw["map"] / np.asarray(scale)).mean(1), rtol=1e-4)
    np.testing.assert_allclose(std["map"], raw["map"] / np.asarray(scale), rtol=1e-5)
    val_scores = fitting.score_details(det, model.fitted, digits.x_val)["score"]
    np.testing.assert_allclose(model.calibration_scores, val_scores, rtol=1e-5)


def test_a_standardised_ensemble_keeps_a_scale_per_model_through_save_and_load(tmp_path, digits):
    import jax_anomaly as ja

    est = ja.AutoEncoder(preset="tiny", epochs=2, batch_size=32, n_models=2, model={"score": "gauss3_std"})
    est.fit(np.concatenate([digits.x_train, digits.x_val]))
    scale = est.model_.fitted.params[PIXEL_SCALE]
    assert scale.shape == (2, 64) and not np.allclose(scale[0], scale[1])
    est.save(tmp_path / "model")
    np.testing.assert_allclose(
        ja.load(tmp_path / "model").decision_function(digits.x_test),
        est.decision_function(digits.x_test),
        rtol=1e-6,
    )
