"""K models as one program: model k of a stack equals the detector trained alone with model
k's key and data (parameters and scores, float32 reassociation aside), for every detector
family; per-model data sizes, early stopping, divergence, hyperparameters, resume."""

import dataclasses

import jax
import numpy as np
import pytest

from jax_anomaly.config import TrainConfig, replace
from jax_anomaly.detectors import get_detector
from jax_anomaly.detectors.stack import fit_stack_detector, score_stack, stack_hyper
from jax_anomaly.training.stacked import default_group, stack_trees

# Tolerances of the equivalence (measured 3e-8..2e-7 on CPU with float32 matmuls).
PARAM_TOL, SCORE_RTOL = 1e-6, 1e-5


def max_diff(a, b):
    return max(
        float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def data(n, d=12, seed=0):
    return np.random.default_rng(seed).random((n, d)).astype(np.float32)


def keys(n=2):
    """Model k's key (fresh arrays each call: the key-reuse checker is on in tests)."""
    return [jax.random.key(10 + k) for k in range(n)]


TRAIN = TrainConfig(epochs=2, batch_size=32)


@pytest.mark.parametrize(
    "name,features", [("ae", 12), ("vae", 12), ("aae", 12), ("anogan", 12), ("fanogan", 12), ("rnn_ae", 16)]
)
def test_model_k_of_a_stack_equals_it_trained_alone(name, features):
    """Different data per model (one shorter than a batch) and validation sets of other sizes."""
    det = get_detector(name)
    cfg = det.presets["tiny"]
    xs = [det.to_input(data(n, features, s)) for s, n in ((0, 90), (1, 20))]
    vs = [det.to_input(data(n, features, s + 5)) for s, n in ((0, 15), (1, 6))]
    x_test = det.to_input(data(25, features, 9))
    stack = fit_stack_detector(det, [cfg] * 2, TRAIN, xs, vs, keys=keys(), progress=False)
    scores = score_stack(det, stack, x_test, key=jax.random.key(3))["score"]
    assert scores.shape == (2, 25)
    k = 1  # the short one: padded rows and skipped steps
    alone = det.fit(cfg, TRAIN, xs[k], vs[k], key=keys(3)[k], progress=False)
    assert max_diff(alone.params, stack.model(k).params) < PARAM_TOL
    assert len(alone.result.history) == len(stack.result.results[k].history)
    ref = det.score(alone, x_test, key=jax.random.key(3))["score"]
    np.testing.assert_allclose(scores[k], ref, rtol=SCORE_RTOL, atol=1e-6)


def test_seed_ensemble_on_shared_data_groups_and_epochs():
    """Same data for all: each model its own key; the group layout does not change results;
    models with other default epoch counts stop at their own."""
    det = get_detector("ae")
    cfg = det.presets["tiny"]
    x = data(64)
    one = fit_stack_detector(det, [cfg] * 3, TRAIN, x, keys=keys(3), group=1, progress=False)
    three = fit_stack_detector(det, [cfg] * 3, TRAIN, x, keys=keys(3), group=3, progress=False)
    assert one.result.group == 1 and three.result.group == 3
    assert max_diff(one.params, three.params) < PARAM_TOL
    alone = det.fit(cfg, TRAIN, x, key=keys(3)[2], progress=False)
    assert max_diff(alone.params, three.model(2).params) < PARAM_TOL
    p = np.asarray(jax.tree.leaves(three.params)[0])
    assert not np.allclose(p[0], p[1])  # the keys differ, so do the models

    auto = TrainConfig(epochs=None, batch_size=64)  # default length: per model, from its size
    stack = fit_stack_detector(det, [cfg] * 2, auto, [data(1280), data(2560)], keys=keys(), progress=False)
    assert [len(r.history) for r in stack.result.results] == [100, 50]  # 2,000 steps each


def test_early_stopping_and_divergence_are_per_model():
    det = get_detector("ae")
    cfg = det.presets["tiny"]
    x = data(64)
    huge = x * 1e20  # squares overflow float32: the loss is inf from the first epoch
    train = TrainConfig(epochs=6, batch_size=32, patience=1)
    stack = fit_stack_detector(
        det, [cfg] * 2, train, [x, huge], [x[:16], huge[:16]], keys=keys(), progress=False
    )
    assert list(stack.result.diverged) == [1]
    assert "diverged at epoch 1" in stack.result.diverged[1]
    assert stack.result.results[1].history == []
    init = det.init_state(cfg, train, 12, jax.random.split(keys()[1])[0])
    assert max_diff(init.params, stack.model(1).params) == 0.0  # kept its last finite state
    alone = det.fit(cfg, train, x, x[:16], key=keys(3)[0], progress=False)
    assert max_diff(alone.params, stack.model(0).params) < PARAM_TOL
    assert alone.result.best_epoch == stack.result.results[0].best_epoch


def test_hyperparameters_on_the_model_axis():
    det = get_detector("vae")
    base = det.presets["tiny"]
    cfgs = [replace(base, beta=b) for b in (0.5, 2.0)]
    trains = [dataclasses.replace(TRAIN, learning_rate=lr) for lr in (1e-3, 1e-2)]
    x = data(64)
    stack = fit_stack_detector(det, cfgs, trains, x, keys=keys(), progress=False)
    assert stack.hyper == {"beta": (0.5, 2.0)}
    alone = det.fit(cfgs[1], trains[1], x, key=keys(3)[1], progress=False)
    assert max_diff(alone.params, stack.model(1).params) < PARAM_TOL

    with pytest.raises(ValueError, match="'likelihood' differs .* not a float setting"):
        stack_hyper([base, replace(base, likelihood="bernoulli")])
    with pytest.raises(ValueError, match="'latent' differs .* not a float setting"):
        fit_stack_detector(det, [base, replace(base, latent=3)], TRAIN, x, keys=keys(), progress=False)
    with pytest.raises(ValueError, match="other shapes"):
        stack_trees([{"w": np.zeros((2, 3))}, {"w": np.zeros((2, 4))}])
    with pytest.raises(ValueError, match="TrainConfig.batch_size differs"):
        fit_stack_detector(
            det, [base] * 2, [TRAIN, dataclasses.replace(TRAIN, batch_size=8)], x, keys=keys(), progress=False
        )


def test_stacked_resume_equals_an_uninterrupted_run(tmp_path):
    det = get_detector("ae")
    cfg = det.presets["tiny"]
    x = data(64)
    full = fit_stack_detector(
        det, [cfg] * 2, TrainConfig(epochs=4, batch_size=32), x, keys=keys(), progress=False
    )
    path = str(tmp_path / "stack.ckpt")
    fit_stack_detector(
        det, [cfg] * 2, TrainConfig(epochs=2, batch_size=32, checkpoint=path), x, keys=keys(), progress=False
    )
    # The run "crashed" after epoch 2: the same command resumes from the checkpoint.
    resumed = fit_stack_detector(
        det,
        [cfg] * 2,
        TrainConfig(epochs=4, batch_size=32, checkpoint=path, resume=True),
        x,
        keys=keys(),
        progress=False,
    )
    assert max_diff(full.params, resumed.params) == 0.0
    assert [h["epoch"] for h in resumed.result.results[0].history] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="other data or settings"):
        fit_stack_detector(
            det,
            [cfg] * 2,
            TrainConfig(epochs=4, batch_size=32, checkpoint=path, resume=True),
            x,
            keys=keys(3)[1:],
            progress=False,
        )


def test_bad_stacks_raise():
    det = get_detector("ae")
    cfg = det.presets["tiny"]
    with pytest.raises(ValueError, match="3 configs for 2 keys"):
        fit_stack_detector(det, [cfg] * 3, TRAIN, data(10), keys=keys(), progress=False)
    with pytest.raises(ValueError, match="needs 2 training"):
        fit_stack_detector(det, [cfg] * 2, TRAIN, [data(10)], keys=keys(), progress=False)
    with pytest.raises(ValueError, match="NaN or inf"):
        fit_stack_detector(
            det, [cfg] * 2, TRAIN, [data(10), np.full((4, 12), np.nan)], keys=keys(), progress=False
        )
    assert default_group(8, "cpu") == 4 and default_group(8, "gpu") == 8 and default_group(1, "cpu") == 1
    assert default_group(5, "cpu") == 5 and default_group(50, "cpu") == 5 and default_group(6, "cpu") == 3


def test_ensemble_estimator_and_run(tmp_path):
    """``n_models``: model 0 is the single model of the same seed; the combined score
    separates anomalies; save/load keep the whole stack; the runner's ``ensemble``."""
    from sklearn.metrics import roc_auc_score

    import jax_anomaly as ja
    from jax_anomaly import DataConfig, RunConfig, run

    rng = np.random.default_rng(0)
    normal, anomalies = rng.normal(size=(500, 20)), rng.normal(3, 1, size=(40, 20))
    lo, hi = normal.min(0), normal.max(0)
    scale = lambda a: ((a - lo) / (hi - lo)).astype(np.float32)  # noqa: E731
    x_test, y = np.r_[scale(normal[:100]), scale(anomalies)], np.r_[np.zeros(100), np.ones(40)]
    params = dict(preset="synthetic", epochs=3, batch_size=64)
    single = ja.AutoEncoder(**params).fit(scale(normal[100:]))
    ens = ja.AutoEncoder(**params, n_models=3).fit(scale(normal[100:]))
    details = ens.score_details(x_test)
    assert details["model_scores"].shape == (3, 140)
    np.testing.assert_allclose(
        details["model_scores"][0], single.decision_function(x_test), rtol=1e-5, atol=1e-6
    )
    assert roc_auc_score(y, details["score"]) > 0.95
    assert 0.0 < ens.predict(x_test[:100]).mean() < 0.3  # the threshold is on the combined score
    ens.save(tmp_path / "ens")
    back = ja.load(tmp_path / "ens")
    assert back.n_models == 3
    np.testing.assert_array_equal(back.decision_function(x_test), ens.decision_function(x_test))
    with pytest.raises(ValueError, match="n_models must be an integer >= 1"):
        ja.AutoEncoder(n_models=0).fit(scale(normal))

    s = run(
        RunConfig(
            detector="ae",
            data=DataConfig("digits"),
            train=TRAIN,
            ensemble=2,
            out=str(tmp_path / "r"),
            plots=False,
            progress=False,
        )
    )
    assert s["training"]["final"]["models"] == 2 and s["metrics"]["auroc"] > 0.8
    assert ja.load(tmp_path / "r" / "model").n_models == 2
