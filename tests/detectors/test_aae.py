import dataclasses

import jax
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors import aae

TRAIN = TrainConfig(epochs=30, batch_size=32)


@pytest.fixture(scope="module")
def synthetic_aae(synthetic):
    cfg = aae.PRESETS["synthetic"]
    return aae.DETECTOR.fit(
        cfg, TRAIN, synthetic.x_train, synthetic.x_val, key=jax.random.key(0), progress=False
    )


def test_codes_follow_the_prior_and_anomalies_separate(synthetic, synthetic_aae):
    out = aae.DETECTOR.score(synthetic_aae, synthetic.x_test)
    codes = out["z"][synthetic.y_test == 0]
    assert np.all((codes.std(0) > 0.5) & (codes.std(0) < 2.0)), codes.std(0)
    assert np.all(np.abs(codes.mean(0)) < 0.5), codes.mean(0)
    assert roc_auc_score(synthetic.y_test, out["score"]) > 0.95


def test_prior_weight_adds_the_prior_term(synthetic, synthetic_aae):
    fitted = dataclasses.replace(
        synthetic_aae, config=dataclasses.replace(synthetic_aae.config, prior_weight=2.0)
    )
    out = aae.DETECTOR.score(fitted, synthetic.x_test[:11])
    latent = fitted.config.latent
    np.testing.assert_allclose(out["score"], out["recon_error"] + 2.0 * out["prior_nll"] / latent, rtol=1e-5)


def test_one_step_runs_three_phases_jitted_equals_eager(synthetic):
    cfg = aae.PRESETS["tiny"]
    state = aae.with_input_stats(cfg, aae.init_state(cfg, TRAIN, 20, jax.random.key(0)), synthetic.x_train)
    step = aae.make_step(cfg, TRAIN, 20)
    batch, mask = synthetic.x_train[:16], np.ones(16, np.float32)
    jitted, m1 = jax.jit(step)(state, batch, mask, jax.random.key(1))
    with jax.disable_jit():
        eager, m2 = step(state, batch, mask, jax.random.key(1))
    for a, b in zip(jax.tree.leaves(jitted), jax.tree.leaves(eager), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    for part in ("encoder", "decoder", "discriminator"):  # every phase moved its parameters
        moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), jitted.params[part], state.params[part])
        assert max(jax.tree.leaves(moved)) > 0, part
    np.testing.assert_array_equal(
        jitted.params["input"]["mean"], state.params["input"]["mean"]
    )  # never trained
    assert set(m1) == {"loss", "d_loss", "g_loss", "d_prior", "d_codes"}
