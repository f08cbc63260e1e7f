import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors import autoencoder as ae
from jax_anomaly.training import (
    TrainingDivergedError,
    epoch_batches,
    make_epoch_fn,
    masked_mean,
)
from tests.training import fit

CFG = ae.PRESETS["tiny"]


@pytest.fixture(scope="module")
def setup(synthetic):
    train = TrainConfig(batch_size=32)
    state = ae.init_state(CFG, train, synthetic.n_features, jax.random.key(0))
    return state, ae.make_step(CFG, TrainConfig(), 0), jnp.asarray(synthetic.x_train)


def _assert_trees_close(a, b, **tol):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **tol)


@pytest.mark.parametrize("n, bs, drop", [(10, 3, False), (10, 3, True), (9, 3, False), (5, 8, False)])
def test_epoch_batches_cover_each_sample_once(n, bs, drop):
    idx, mask = epoch_batches(jax.random.key(1), n, bs, drop)
    real = np.asarray(idx)[np.asarray(mask) == 1]
    assert idx.shape[1] == bs
    if drop:
        assert len(real) == (n // bs) * bs and len(set(real.tolist())) == len(real)
    else:
        assert sorted(real.tolist()) == list(range(n))


def test_masked_mean_ignores_padding():
    assert float(masked_mean(jnp.array([1.0, 3.0, 100.0]), jnp.array([1.0, 1.0, 0.0]))) == 2.0


def test_jitted_step_equals_eager(setup):
    state, step, x = setup
    batch, mask = x[:32], jnp.ones(32)
    jit_state, jit_m = jax.jit(step)(state, batch, mask, jax.random.key(2))
    with jax.disable_jit():
        eager_state, eager_m = step(state, batch, mask, jax.random.key(2))
    np.testing.assert_allclose(jit_m["loss"], eager_m["loss"], rtol=1e-5)
    _assert_trees_close(jit_state.params, eager_state.params, rtol=1e-5, atol=1e-6)


def test_scanned_epoch_equals_python_loop(setup):
    state, step, x = setup
    n, bs = len(x), 32
    scanned, metrics = jax.jit(make_epoch_fn(step, n=n, batch_size=bs))(state, x, jax.random.key(3))
    perm_key, step_key = jax.random.split(jax.random.key(3))  # the same key, made anew
    idx, mask = epoch_batches(perm_key, n, bs)
    jstep, looped, losses = jax.jit(step), state, []
    for i in range(idx.shape[0]):
        looped, m = jstep(looped, x[idx[i]], mask[i], jax.random.fold_in(step_key, i))
        losses.append(float(m["loss"]))
    _assert_trees_close(scanned.params, looped.params, rtol=1e-5, atol=1e-6)
    weights = np.asarray(mask.sum(1))
    np.testing.assert_allclose(float(metrics["loss"]), np.dot(losses, weights) / n, rtol=1e-5)


def test_padded_batch_equals_unpadded_loss(setup):
    state, step, x = setup
    batch = x[:5]
    padded = jnp.concatenate([batch, jnp.ones((3, x.shape[1]))])
    mask = jnp.array([1.0] * 5 + [0.0] * 3)
    _, m_pad = jax.jit(step)(state, padded, mask, jax.random.key(4))
    _, m_ref = jax.jit(step)(state, batch, jnp.ones(5), jax.random.key(4))
    np.testing.assert_allclose(m_pad["loss"], m_ref["loss"], rtol=1e-6)


def test_fit_decreases_loss_and_compiles_once(setup):
    state, step, x = setup
    traces = []

    def counting_step(*args):
        traces.append(1)  # runs only while tracing
        return step(*args)

    _, result = fit(state, counting_step, x, epochs=5, batch_size=32, key=jax.random.key(5), progress=False)
    losses = [h["loss"] for h in result.history]
    assert len(traces) == 1, "the epoch was traced more than once"
    initial = float(ae.make_eval(CFG, 0)(state, x)["loss"])
    assert losses[-1] < losses[0] < initial
    assert losses[-1] < 0.9 * initial  # iid Gaussian features: a 4-d code explains only part
    assert result.compile_seconds > 0 and result.best_epoch == 5


def test_early_stopping_returns_best_state(synthetic):
    cfg = ae.PRESETS["tiny"]
    train = TrainConfig(epochs=200, batch_size=32, learning_rate=3e-2, patience=2)
    fitted = ae.DETECTOR.fit(
        cfg, train, synthetic.x_train, synthetic.x_val, key=jax.random.key(6), progress=False
    )
    r = fitted.result
    assert r.stopped_early and len(r.history) < 200
    assert r.history[r.best_epoch - 1]["val_loss"] == min(h["val_loss"] for h in r.history)


def test_nan_loss_raises_naming_the_epoch(setup):
    state, step, x = setup

    def poisoned(state, batch, mask, key):
        state, m = step(state, batch, mask, key)
        return state, {"loss": jnp.where(state.step > 40, jnp.nan, m["loss"])}

    with pytest.raises(TrainingDivergedError, match="epoch 3") as e:
        fit(state, poisoned, x, epochs=5, batch_size=32, key=jax.random.key(7), progress=False)
    assert int(e.value.last_good_state.step) == 40  # 20 steps per epoch: end of epoch 2
    assert len(e.value.history) == 2


def test_fit_rejects_bad_arguments(setup):
    state, step, x = setup
    with pytest.raises(ValueError, match="epochs must be"):
        fit(state, step, x, epochs=0, batch_size=32, key=jax.random.key(0), progress=False)
    with pytest.raises(ValueError, match="validation data"):
        fit(state, step, x, epochs=1, batch_size=32, key=jax.random.key(0), patience=2, progress=False)


def test_batch_larger_than_data_is_clamped(setup):
    state, step, x = setup
    _, result = fit(state, step, x[:10], epochs=2, batch_size=512, key=jax.random.key(8), progress=False)
    assert len(result.history) == 2


def test_default_training_length_is_steps_based():
    from jax_anomaly.training import auto_epochs

    assert auto_epochs(540, 128) == 400  # 5 steps per epoch: 2,000 steps
    assert auto_epochs(6000, 128) == 43  # 47 steps per epoch
    assert auto_epochs(100_000, 128) == 20  # at least 20 epochs
    assert auto_epochs(10, 128) == 2000  # one (clamped) batch per epoch


def test_streamed_epochs_from_a_memory_map_equal_the_data_on_the_device(setup, synthetic, tmp_path):
    state, plain, x = setup

    def step(state, batch, mask, key):  # draws from its key, as the denoising detectors do
        return plain(state, batch + 0.1 * jax.random.normal(key, batch.shape), mask, key)

    host = np.lib.format.open_memmap(tmp_path / "x.npy", "w+", np.float32, x.shape)
    host[:] = np.asarray(x)
    evaluate, val = ae.make_eval(CFG, 0), jnp.asarray(synthetic.x_val)
    # 3 batches a chunk: the epoch's last chunk and its last batch are both shorter
    settings = dict(epochs=3, batch_size=32, key=jax.random.key(9), eval_fn=evaluate, val_data=val)
    assert (len(x) // 32 + 1) % 3 and len(x) % 32
    on_device, r_device = fit(state, step, x, **settings)
    streamed, r_stream = fit(state, step, host, stream_rows=100, **settings)
    _assert_trees_close(streamed.params, on_device.params, rtol=1e-5, atol=1e-6)
    assert int(streamed.step) == int(on_device.step) == 3 * (len(x) // 32 + 1)
    for a, b in zip(r_stream.history, r_device.history, strict=True):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
        np.testing.assert_allclose(a["val_loss"], b["val_loss"], rtol=1e-5)
    assert r_stream.compile_seconds > 0
    with pytest.raises(ValueError, match="stream_rows must be"):
        TrainConfig(stream_rows=0)


def test_streaming_refuses_several_processes(setup, monkeypatch):
    state, step, x = setup
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    with pytest.raises(ValueError, match="one device in one process"):
        fit(state, step, np.asarray(x), epochs=1, stream_rows=64, key=jax.random.key(0))
