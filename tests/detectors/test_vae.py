import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors import vae


@pytest.fixture(scope="module")
def digits_vae(digits):
    cfg = vae.PRESETS["digits"]
    train = TrainConfig(epochs=40, batch_size=32)
    return vae.DETECTOR.fit(cfg, train, digits.x_train, digits.x_val, key=jax.random.key(0), progress=False)


def test_kl_is_active_and_separates(digits, digits_vae):
    last = digits_vae.result.history[-1]
    assert last["kl"] > 1.0  # no posterior collapse with beta = 1
    out = vae.DETECTOR.score(digits_vae, digits.x_test, key=jax.random.key(1))
    for name in ("score", "recon_error", "neg_elbo", "neg_log_recon_prob"):
        assert roc_auc_score(digits.y_test, out[name]) > 0.9, name
    assert out["z"].shape == (len(digits.x_test), 4)


def test_kl_and_gaussian_likelihood_match_closed_forms():
    cfg = vae.VAEConfig(hidden=(8,), latent=3, likelihood="gaussian")
    encode, decode, kl = vae.make_parts(cfg, 5)
    mu, logvar = np.array([0.5, -1.0, 0.0]), np.array([0.2, -0.3, 0.0])
    expected = 0.5 * np.sum(mu**2 + np.exp(logvar) - 1 - logvar)
    np.testing.assert_allclose(kl(jnp.asarray(mu), jnp.asarray(logvar)), expected, rtol=1e-5)
    state = vae.init_state(cfg, TrainConfig(), 5, jax.random.key(0))
    z, x = jnp.array([0.1, 0.2, -0.3]), jnp.array([0.0, 0.2, 0.4, 0.6, 1.0])
    mean, log_lik = decode(state.params, z)
    out = vae.build_models(cfg, 5)[1].apply({"params": state.params["decoder"]}, z).reshape(5, 2)
    logvar_x = -6.0 + np.log1p(np.exp(np.asarray(out[:, 1]) + 6.0))
    expected = norm.logpdf(np.asarray(x), np.asarray(mean), np.exp(0.5 * logvar_x)).sum()
    np.testing.assert_allclose(log_lik(x), expected, rtol=1e-5)


def test_reconstruction_probability_is_the_mc_average(digits, digits_vae):
    """-log (1/L) sum_l p(x|z_l) with z_l = mu + sigma * eps_l, recomputed by hand."""
    cfg = digits_vae.config
    encode, decode, _ = vae.make_parts(cfg, digits_vae.n_features)
    x = jnp.asarray(digits.x_test[0])
    eps = jax.random.normal(jax.random.key(3), (cfg.mc_samples, cfg.latent))
    out = vae.make_sample_scorer(cfg, digits_vae.n_features)(digits_vae.params, x, eps)
    mu, logvar = encode(digits_vae.params, x)
    log_liks = [float(decode(digits_vae.params, mu + jnp.exp(0.5 * logvar) * e)[1](x)) for e in eps]
    np.testing.assert_allclose(
        out["neg_log_recon_prob"], -(logsumexp(log_liks) - np.log(len(eps))), rtol=1e-5
    )
    np.testing.assert_allclose(
        out["neg_elbo"], -np.mean(log_liks) + float(vae.make_parts(cfg, 64)[2](mu, logvar)), rtol=1e-5
    )


@pytest.mark.parametrize("name, part", [("elbo", "neg_elbo"), ("recon", "recon_error")])
def test_score_choice(digits, digits_vae, name, part):
    fitted = dataclasses.replace(digits_vae, config=dataclasses.replace(digits_vae.config, score=name))
    out = vae.DETECTOR.score(fitted, digits.x_test[:9], key=jax.random.key(1))
    np.testing.assert_array_equal(out["score"], out[part])


def test_beta_weights_the_kl(digits):
    kls = {}
    for beta in (0.1, 4.0):
        cfg = dataclasses.replace(vae.PRESETS["digits"], beta=beta)
        f = vae.DETECTOR.fit(
            cfg, TrainConfig(epochs=10, batch_size=32), digits.x_train, key=jax.random.key(0), progress=False
        )
        kls[beta] = f.result.history[-1]["kl"]
    assert kls[4.0] < kls[0.1]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"likelihood": "poisson"}, "unknown likelihood"),
        ({"score": "x"}, "unknown VAE score"),
        ({"beta": -1}, "beta"),
    ],
)
def test_config_validation(overrides, message):
    with pytest.raises(ValueError, match=message):
        vae.VAEConfig(**overrides)
