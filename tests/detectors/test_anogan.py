import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors import anogan, gan, get_detector
from jax_anomaly.detectors.base import sample_scorer
from jax_anomaly.training.losses import bce

CFG = anogan.AnoGANConfig(latent=8, g_hidden=(32, 64), d_hidden=(64, 32), search_steps=40, search_lr=0.05)


@pytest.fixture(scope="module")
def digits_gan(digits):
    """A small GAN trained on 8x8 digit-0 images in [-1, 1]."""
    train = TrainConfig(epochs=60, batch_size=32)
    return anogan.DETECTOR.fit(CFG, train, 2 * digits.x_train - 1, key=jax.random.key(0), progress=False)


@pytest.fixture(scope="module")
def probe(digits):
    """Twelve test images (normal and anomalous) in [-1, 1] and their initial latents."""
    idx = np.r_[np.flatnonzero(digits.y_test == 0)[:6], np.flatnonzero(digits.y_test == 1)[:6]]
    x = 2 * digits.x_test[idx] - 1
    return x, jax.random.normal(jax.random.key(1), (len(x), CFG.latent))


def test_vmapped_search_equals_per_sample_loop(digits_gan, probe):
    x, z0 = probe
    models = gan.build_models(CFG, x.shape[1])
    batched = sample_scorer(anogan.make_sample_scorer, CFG, x.shape[1], len(x))(digits_gan.params, x, z0)
    one = jax.jit(lambda p, xi, zi: anogan.search_one(CFG, models, p, xi, zi))
    for i in range(len(x)):
        single = one(digits_gan.params, x[i], z0[i])
        for name in ("score", "residual", "discrimination", "z", "reconstruction"):
            np.testing.assert_allclose(batched[name][i], single[name], rtol=2e-4, atol=2e-5, err_msg=name)


def test_chunked_search_equals_unchunked(digits_gan, probe):
    x, z0 = probe
    whole = sample_scorer(anogan.make_sample_scorer, CFG, x.shape[1], len(x))(digits_gan.params, x, z0)
    chunked = sample_scorer(anogan.make_sample_scorer, CFG, x.shape[1], 5)(
        digits_gan.params, x, z0
    )  # 12 = 5 + 5 + 2
    np.testing.assert_allclose(chunked["score"], whole["score"], rtol=2e-4, atol=1e-6)


def test_score_parts_add_up(digits_gan, probe):
    x, _ = probe
    out = anogan.DETECTOR.score(digits_gan, x, key=jax.random.key(2))
    lam = CFG.lam
    np.testing.assert_allclose(
        out["score"], (1 - lam) * out["residual"] + lam * out["discrimination"], rtol=1e-5
    )
    assert out["z"].shape == (len(x), CFG.latent) and out["reconstruction"].shape == x.shape
    assert np.all(np.abs(out["reconstruction"]) <= 1)


def test_search_reduces_loss(digits_gan, probe):
    x, z0 = probe
    few = sample_scorer(
        anogan.make_sample_scorer, dataclasses.replace(CFG, search_steps=1), x.shape[1], len(x)
    )
    many = sample_scorer(anogan.make_sample_scorer, CFG, x.shape[1], len(x))
    assert np.mean(many(digits_gan.params, x, z0)["score"]) < np.mean(few(digits_gan.params, x, z0)["score"])


@pytest.mark.parametrize("loss", ["tutorial", "paper"])
def test_separates_digits(digits, digits_gan, loss):
    fitted = dataclasses.replace(digits_gan, config=dataclasses.replace(CFG, loss=loss))
    scores = anogan.DETECTOR.score(fitted, 2 * digits.x_test - 1, key=jax.random.key(3))["score"]
    assert roc_auc_score(digits.y_test, scores) > 0.8


def test_jitted_gan_step_equals_eager(digits):
    state = gan.init_state(CFG, TrainConfig(), digits.n_features, jax.random.key(4))
    step = gan.make_step(CFG, TrainConfig(), 0)
    batch, mask = jnp.asarray(2 * digits.x_train[:16] - 1), jnp.ones(16).at[-3:].set(0.0)
    jit_state, jit_m = jax.jit(step)(state, batch, mask, jax.random.key(5))
    with jax.disable_jit():
        eager_state, eager_m = step(state, batch, mask, jax.random.key(5))
    for name in jit_m:
        np.testing.assert_allclose(jit_m[name], eager_m[name], rtol=1e-5, err_msg=name)
    for a, b in zip(jax.tree.leaves(jit_state), jax.tree.leaves(eager_state), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_gan_training_moves_both_players(digits_gan):
    h = digits_gan.result.history
    assert len(h) == 60 and all(np.isfinite(e["d_loss"]) and np.isfinite(e["g_loss"]) for e in h)
    assert 0.0 < h[-1]["d_real"] < 1.0 and 0.0 < h[-1]["d_fake"] < 1.0


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"lam": 1.5}, "lambda must be in \\[0, 1\\]"),
        ({"lam": -0.1}, "lambda must be in \\[0, 1\\]"),
        ({"search_steps": 0}, "search_steps must be >= 1"),
        ({"search_lr": 0.0}, "search_lr must be > 0"),
        ({"loss": "l2"}, "unknown AnoGAN loss"),
        ({"score_batch": 0}, "score_batch must be >= 1"),
    ],
)
def test_bad_config(overrides, message):
    with pytest.raises(ValueError, match=message):
        get_detector("anogan").config("tiny", **overrides)


def test_wrong_input_dimension(digits_gan):
    with pytest.raises(ValueError, match="has 10 features; the detector was fitted on 64"):
        anogan.DETECTOR.score(digits_gan, np.zeros((3, 10), np.float32), key=jax.random.key(6))


@pytest.mark.parametrize(
    "n, cap, expected", [(10, 2048, 10), (2048, 2048, 2048), (10000, 2048, 2000), (4097, 2048, 1366)]
)
def test_auto_score_batch(n, cap, expected):
    k = anogan.auto_score_batch(n, cap)
    assert k == expected and k <= cap


def test_best_of_candidates_starts_from_the_best(digits_gan, probe):
    x, _ = probe
    cfg = dataclasses.replace(CFG, search_steps=1, search_lr=1e-9)  # a negligible single step
    models = gan.build_models(cfg, x.shape[1])
    candidates = jax.random.normal(jax.random.key(8), (4, cfg.latent))
    picked = anogan.search_one(cfg, models, digits_gan.params, x[0], candidates)
    each = [float(anogan.search_one(cfg, models, digits_gan.params, x[0], c)["score"]) for c in candidates]
    np.testing.assert_allclose(float(picked["score"]), min(each), rtol=1e-5)


def test_cosine_schedule_and_init_options_score(digits, digits_gan):
    cfg = dataclasses.replace(CFG, search_schedule="cosine", search_lr=0.1, search_init=8)
    fitted = dataclasses.replace(digits_gan, config=cfg)
    scores = anogan.DETECTOR.score(fitted, 2 * digits.x_test - 1, key=jax.random.key(9))["score"]
    assert scores.shape == (len(digits.x_test),) and roc_auc_score(digits.y_test, scores) > 0.8


@pytest.mark.parametrize(
    "overrides, message",
    [({"search_schedule": "linear"}, "search_schedule must be"), ({"search_init": 0}, "search_init must be")],
)
def test_bad_search_options(overrides, message):
    with pytest.raises(ValueError, match=message):
        anogan.AnoGANConfig(**overrides)


def test_gan_step_matches_two_separate_gradients(digits):
    """The step reuses G(z) through a vjp; it must equal recomputing G in the G loss."""
    state = gan.init_state(CFG, TrainConfig(), digits.n_features, jax.random.key(10))
    batch, mask = jnp.asarray(2 * digits.x_train[:16] - 1), jnp.ones(16)
    new_state, _ = jax.jit(gan.make_step(CFG, TrainConfig(), 0))(state, batch, mask, jax.random.key(11))
    z = jax.random.normal(jax.random.key(11), (16, CFG.latent))
    d_state = new_state.discriminator  # the D update does not depend on how G's gradient is computed

    def g_loss(g_params):
        fake = state.generator.apply_fn({"params": g_params}, z)
        logits = d_state.apply_fn({"params": d_state.params}, fake)
        return jnp.mean(bce(logits, 1.0))

    expected = state.generator.apply_gradients(grads=jax.grad(g_loss)(state.generator.params))
    for a, b in zip(
        jax.tree.leaves(new_state.generator.params), jax.tree.leaves(expected.params), strict=True
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
