"""GOAD for tables: fixed random maps, the triplet centre loss, the scores."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors import goad


@pytest.fixture(scope="module")
def fitted(synthetic):
    return goad.DETECTOR.fit(
        goad.PRESETS["tiny"],
        TrainConfig(epochs=10, batch_size=32),
        synthetic.x_train,
        key=jax.random.key(0),
        progress=False,
    )


def test_maps_stay_as_drawn_and_scores_separate(synthetic, fitted):
    short = goad.DETECTOR.fit(
        goad.PRESETS["tiny"],
        TrainConfig(epochs=1, batch_size=32),
        synthetic.x_train,
        key=jax.random.key(0),
        progress=False,
    )  # the same draw, nine epochs fewer: the maps alike, the network not
    np.testing.assert_array_equal(fitted.params["net"]["maps"], short.params["net"]["maps"])
    assert not np.allclose(
        fitted.params["net"]["net"]["logits"]["kernel"], short.params["net"]["net"]["logits"]["kernel"]
    )
    assert fitted.params["net"]["maps"].shape == (8, 20, 8)
    out = goad.DETECTOR.score(fitted, synthetic.x_test)
    np.testing.assert_array_equal(out["score"], out["distance"])
    assert roc_auc_score(synthetic.y_test, out["distance"]) > 0.95
    assert roc_auc_score(synthetic.y_test, out["mahalanobis"]) > 0.95  # the default preset's score
    for name in ("centres", "ce", "dirichlet"):
        assert np.all(np.isfinite(out[name])), name


def test_triplet_centre_loss_matches_its_definition():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(3, 5, 2)).astype(np.float32)  # (M, B, F)
    mask = np.array([1, 1, 1, 1, 0], np.float32)
    margin = 0.5
    centres = f[:, :4].mean(axis=1)
    want = []
    for b in range(4):
        per_map = []
        for m in range(3):
            d = ((f[m, b] - centres) ** 2).sum(-1)
            per_map.append(max(d[m] + margin - np.min(np.delete(d, m)), 0.0))
        want.append(np.mean(per_map))
    got = goad.centre_triplet_loss(jnp.asarray(f), jnp.asarray(mask), margin)
    np.testing.assert_allclose(got, np.mean(want), rtol=1e-5)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"transforms": 1}, "transforms must be >= 2"),
        ({"dim": 0}, "dim and width"),
        ({"score": "x"}, "unknown score"),
    ],
)
def test_config_validation(overrides, message):
    with pytest.raises(ValueError, match=message):
        goad.GoadConfig(**overrides)
