import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_anomaly import persistence
from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors import autoencoder as ae
from jax_anomaly.training import TrainingDivergedError
from tests.training import fit

CFG = ae.PRESETS["tiny"]


KEY = jax.random.key(11)


@pytest.fixture(scope="module")
def setup(synthetic):
    state = ae.init_state(CFG, TrainConfig(), synthetic.n_features, jax.random.key(0))
    return (
        state,
        ae.make_step(CFG, TrainConfig(), 0),
        jnp.asarray(synthetic.x_train),
        jnp.asarray(synthetic.x_val),
    )


def _run(setup, epochs, **kw):
    state, step, x, _ = setup
    return fit(state, step, x, epochs=epochs, batch_size=32, key=KEY, progress=False, **kw)


def _assert_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_resume_equals_uninterrupted_bit_for_bit(setup, tmp_path):
    ckpt = tmp_path / "ckpt.msgpack"
    whole, whole_result = _run(setup, 6)
    _run(setup, 3, checkpoint=ckpt, checkpoint_every=2)  # stops after epoch 3 ("the crash")
    _, _, meta = persistence.load_checkpoint(ckpt, setup[0])
    assert meta["epoch"] == 3  # the last epoch is always written
    resumed, result = _run(setup, 6, checkpoint=ckpt, checkpoint_every=2, resume=True)
    _assert_equal(resumed, whole)  # parameters and optimiser state
    assert [h["loss"] for h in result.history] == [h["loss"] for h in whole_result.history]


def test_resume_with_early_stopping_keeps_the_best_state(setup, tmp_path):
    state, step, x, x_val = setup
    ckpt = tmp_path / "es.msgpack"
    eval_fn = ae.make_eval(CFG, 0)
    kw = {"eval_fn": eval_fn, "val_data": x_val, "patience": 2}
    whole, r1 = _run(setup, 8, **kw)
    _run(setup, 4, checkpoint=ckpt, **kw)
    resumed, r2 = _run(setup, 8, checkpoint=ckpt, resume=True, **kw)
    _assert_equal(resumed, whole)
    assert r2.best_epoch == r1.best_epoch and r2.stopped_early == r1.stopped_early


def test_crash_mid_write_keeps_the_previous_checkpoint(setup, tmp_path, monkeypatch):
    ckpt = tmp_path / "ckpt.msgpack"
    _run(setup, 1, checkpoint=ckpt)
    before = ckpt.read_bytes()

    def crash(*args):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        _run(setup, 2, checkpoint=ckpt, resume=True)
    monkeypatch.undo()
    assert ckpt.read_bytes() == before  # the temporary file never replaced it
    _, _, meta = persistence.load_checkpoint(ckpt, setup[0])
    assert meta["epoch"] == 1


def test_divergence_keeps_the_last_good_checkpoint(setup, tmp_path):
    state, step, x, _ = setup

    def poisoned(state, batch, mask, key):
        state, m = step(state, batch, mask, key)
        return state, {"loss": jnp.where(state.step > 40, jnp.nan, m["loss"])}  # epoch 3 (20 steps each)

    ckpt = tmp_path / "ckpt.msgpack"
    with pytest.raises(TrainingDivergedError, match=r"epoch 3.*last checkpoint .* is kept"):
        fit(state, poisoned, x, epochs=5, batch_size=32, key=KEY, progress=False, checkpoint=ckpt)
    good, _, meta = persistence.load_checkpoint(ckpt, state)
    assert meta["epoch"] == 2 and int(good.step) == 40


def test_missing_corrupt_or_mismatched_checkpoint(setup, tmp_path):
    ckpt = tmp_path / "ckpt.msgpack"
    with pytest.raises(ValueError, match="no checkpoint at"):
        _run(setup, 2, checkpoint=ckpt, resume=True)
    ckpt.write_bytes(b"\x93not a checkpoint at all")
    with pytest.raises(ValueError, match="corrupt|not a jax_anomaly checkpoint"):
        _run(setup, 2, checkpoint=ckpt, resume=True)
    _run(setup, 1, checkpoint=ckpt)
    state, step, x, _ = setup
    with pytest.raises(ValueError, match="other data or settings \\(batch_size\\)"):
        fit(state, step, x, epochs=2, batch_size=16, key=KEY, progress=False, checkpoint=ckpt, resume=True)
    other = ae.init_state(ae.PRESETS["synthetic"], TrainConfig(), x.shape[1], jax.random.key(0))
    with pytest.raises(ValueError, match="does not match this model's structure"):
        fit(other, step, x, epochs=2, batch_size=32, key=KEY, progress=False, checkpoint=ckpt, resume=True)
