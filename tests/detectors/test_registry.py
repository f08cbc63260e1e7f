"""Every registered detector, with its tiny preset, trains and separates the synthetic case
(the image-only detectors: digit 0 among the 8x8 digits; the defect finder: tiles with dark
spots and lines)."""

import jax
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors import detector_names, get_detector

# Square images (rows of side**2 pixels): the fixture each image-only detector separates.
IMAGE_ONLY = {"geom": "digits", "defects": "defect_tiles"}


@pytest.mark.parametrize("name", detector_names())
def test_tiny_preset_trains_and_separates(name, request):
    synthetic = request.getfixturevalue(IMAGE_ONLY.get(name, "synthetic"))
    det = get_detector(name)
    cfg = det.config("tiny")
    fitted = det.fit(
        cfg,
        TrainConfig(epochs=20, batch_size=32),
        det.to_input(synthetic.x_train),
        det.to_input(synthetic.x_val),
        key=jax.random.key(0),
        progress=False,
    )
    scores = det.score(fitted, det.to_input(synthetic.x_test), key=jax.random.key(1))["score"]
    assert scores.shape == (len(synthetic.x_test),) and np.all(np.isfinite(scores))
    assert roc_auc_score(synthetic.y_test, scores) > 0.8


def test_unknown_detector():
    with pytest.raises(ValueError, match="unknown detector 'svm'"):
        get_detector("svm")


def test_per_sample_draws_of_a_large_host_set_are_made_by_parts(tmp_path, monkeypatch):
    """The random draws that scoring takes from each row's hash (the VAE's Monte-Carlo
    samples, AnoGAN's initial latents) are the same when a memory-mapped set over the limit
    is hashed a part at a time."""
    from jax_anomaly.detectors import base

    x = np.random.default_rng(0).random((50, 12), dtype=np.float32)
    mapped = np.lib.format.open_memmap(tmp_path / "x.npy", "w+", np.float32, x.shape)
    mapped[:] = x
    whole = np.asarray(base.per_sample_normal(jax.random.key(1), x, (3, 2)))
    monkeypatch.setattr(base, "CHECK_BYTES", 7 * 12 * 4)  # 7 rows a part
    parts = base.per_sample_normal(jax.random.key(1), np.load(tmp_path / "x.npy", mmap_mode="r"), (3, 2))
    assert isinstance(parts, np.ndarray) and parts.shape == (50, 3, 2)
    np.testing.assert_array_equal(parts, whole)
