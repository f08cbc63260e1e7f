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
