"""Run as a script (by tests/test_sharding.py) in a fresh process with 8 virtual CPU devices:
trains and scores on 1 and on 8 devices and prints the differences as JSON on the last line."""

import json
import sys

import jax

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_default_matmul_precision", "float32")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jax_anomaly.config import DataConfig, TrainConfig  # noqa: E402
from jax_anomaly.detectors import anogan, autoencoder  # noqa: E402
from jax_anomaly.runner import RunConfig, prepare_data  # noqa: E402


def max_diff(a, b):
    return max(
        float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def same_batches_on_one_device(detector, cfg, train, x, key, devices):
    """The reference of a data-parallel fit over ``devices`` devices: the same schedule (each
    device's shard permuted with its own key, ``shard_batches``), every batch gathered whole
    and stepped on one device in a Python loop."""
    from jax_anomaly.sharding import device_shards, make_mesh
    from jax_anomaly.training.loop import shard_batches

    phase = detector.phases[0]
    init_key, train_key = jax.random.split(key)
    state = phase.init_state(cfg, train, x.shape[1], init_key)
    step = jax.jit(phase.make_step(cfg, train, x.shape[1]))
    shards = device_shards(len(x), make_mesh(devices))
    counts = [c for _, c in shards]
    local = -(-min(train.batch_size, len(x)) // devices)
    starts = np.repeat([s for s, _ in shards], local)
    for epoch in range(1, train.epochs + 1):
        perm_key, step_key = jax.random.split(jax.random.fold_in(train_key, epoch))
        idx, mask = shard_batches(perm_key, counts, max(counts), min(train.batch_size, len(x)))
        rows = np.minimum(np.asarray(idx) + starts, len(x) - 1)  # masked rows: any valid row
        for i in range(len(rows)):
            state, _ = step(state, x[rows[i]], mask[i], jax.random.fold_in(step_key, i))
    return phase.params_of(state)


def main():
    out = {"devices": jax.device_count()}
    data = prepare_data(RunConfig(data=DataConfig("synthetic", (0,))))
    x, x_val, x_test = data.x_train, data.x_val, data.x_test[:101]  # 101: not a multiple of 8
    key = jax.random.key(0)

    def fit_ae(devices, batch_size=32, x=x, epochs=2):
        train = TrainConfig(epochs=epochs, batch_size=batch_size, devices=devices)
        return autoencoder.DETECTOR.fit(autoencoder.PRESETS["tiny"], train, x, x_val, key=key, progress=False)

    one, eight = fit_ae(1), fit_ae(8)
    # Training key: as Detector.fit passes it to the loop (one phase: the seed key itself).
    reference = same_batches_on_one_device(
        autoencoder.DETECTOR, autoencoder.PRESETS["tiny"], TrainConfig(epochs=2, batch_size=32), x, key, 8
    )
    out["ae_param_diff"] = max_diff(reference, eight.params)
    out["ae_param_scale"] = max(float(np.max(np.abs(p))) for p in jax.tree.leaves(one.params))
    out["ae_loss"] = [one.result.history[-1]["loss"], eight.result.history[-1]["loss"]]
    s1 = autoencoder.DETECTOR.score(one, x_test, devices=1)
    s8 = autoencoder.DETECTOR.score(one, x_test, devices=8)
    out["ae_score_diff"] = max_diff(s1, s8)
    out["ae_score_len"] = len(s8["score"])

    # An uneven batch: 13 rows on 8 devices are padded to 16 with mask 0.
    u1, u8 = fit_ae(1, batch_size=13, x=x[:13], epochs=1), fit_ae(8, batch_size=13, x=x[:13], epochs=1)
    cfg = autoencoder.PRESETS["tiny"]
    state0 = autoencoder.init_state(cfg, TrainConfig(), x.shape[1], jax.random.split(key)[0])
    recon = state0.apply_fn({"params": state0.params}, x[:13])
    out["uneven_loss"] = {
        "direct": float(jnp.mean(autoencoder.per_sample_loss(recon, x[:13], cfg.loss))),
        "one_device": u1.result.history[0]["loss"],
        "eight_devices": u8.result.history[0]["loss"],
    }
    out["uneven_param_diff"] = max_diff(u1.params, u8.params)

    gcfg = anogan.PRESETS["tiny"]
    xg = 2 * x - 1
    gans = [
        anogan.DETECTOR.fit(
            gcfg, TrainConfig(epochs=2, batch_size=32, devices=d), xg, key=key, progress=False
        )
        for d in (1, 8)
    ]
    reference = same_batches_on_one_device(
        anogan.DETECTOR, gcfg, TrainConfig(epochs=2, batch_size=32), xg, key, 8
    )
    out["gan_param_diff"] = max_diff(reference, gans[1].params)
    g1 = anogan.DETECTOR.score(gans[0], 2 * x_test - 1, key=jax.random.key(1), devices=1)
    g8 = anogan.DETECTOR.score(gans[0], 2 * x_test - 1, key=jax.random.key(1), devices=8)
    out["anogan_score_diff"] = max_diff(g1, g8)
    out["anogan_score_scale"] = float(np.max(np.abs(g1["score"])))

    # Many models: the model axis split over 8 devices (each trains its own models, 6 models:
    # padded to 8) equals the one-device stack.
    from jax_anomaly.detectors.stack import fit_stack_detector, score_stack

    keys = [jax.random.key(k) for k in range(6)]
    stacks = [
        fit_stack_detector(
            autoencoder.DETECTOR,
            [cfg] * 6,
            TrainConfig(epochs=2, batch_size=32),
            [x, x[:50]] * 3,
            keys=keys,
            devices=d,
            progress=False,
        )
        for d in (1, 8)
    ]
    out["stack_param_diff"] = max_diff(stacks[0].params, stacks[1].params)
    out["stack_devices"] = stacks[1].result.devices
    out["stack_score_diff"] = max_diff(
        score_stack(autoencoder.DETECTOR, stacks[0], x_test, devices=1),
        score_stack(autoencoder.DETECTOR, stacks[1], x_test, devices=8),
    )

    # The 8-device training step really is data-parallel: the compiled epoch holds all-reduces.
    from jax_anomaly.sharding import make_mesh, replicate
    from jax_anomaly.training import make_epoch_fn

    mesh = make_mesh(8)
    step = autoencoder.make_step(cfg, TrainConfig(), 0)
    epoch = make_epoch_fn(step, n=len(x), batch_size=32, mesh=mesh)
    hlo = jax.jit(epoch).lower(*replicate((state0, x), mesh), key).compile().as_text()
    out["all_reduces_8"] = hlo.count("all-reduce-start") + hlo.count(" all-reduce(")
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
