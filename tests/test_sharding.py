import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from jax_anomaly import sharding
from jax_anomaly.training import epoch_batches


@pytest.fixture(scope="module")
def eight_devices():
    """tests/multi_device_check.py run in a fresh process with 8 virtual CPU devices."""
    script = Path(__file__).with_name("multi_device_check.py")
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_eight_virtual_devices_are_used(eight_devices):
    assert eight_devices["devices"] == 8
    assert eight_devices["all_reduces_8"] > 0  # gradients are combined across devices


def test_training_on_eight_devices_equals_one_device_on_the_same_batches(eight_devices):
    """Each device draws its part of every batch from its own shard; stepping the same batches
    on one device ends with the same parameters (the all-reduce sums in another order)."""
    assert eight_devices["ae_param_diff"] < 1e-5 * max(1.0, eight_devices["ae_param_scale"])
    assert eight_devices["gan_param_diff"] < 1e-5
    one, eight = eight_devices["ae_loss"]
    assert eight == pytest.approx(one, rel=0.1)  # other batches, the same fit


def test_uneven_batch_loss_is_exact(eight_devices):
    loss = eight_devices["uneven_loss"]  # 13 rows on 8 devices: padded to 16 with mask 0
    assert loss["eight_devices"] == pytest.approx(loss["direct"], rel=1e-6)
    assert loss["one_device"] == pytest.approx(loss["direct"], rel=1e-6)
    assert eight_devices["uneven_param_diff"] < 1e-5


def test_scores_on_eight_devices_equal_one(eight_devices):
    assert eight_devices["ae_score_len"] == 101  # padding rows are dropped again
    assert eight_devices["ae_score_diff"] < 1e-5
    assert eight_devices["anogan_score_diff"] < 1e-5 * max(1.0, eight_devices["anogan_score_scale"])


def test_model_axis_split_over_eight_devices_equals_one(eight_devices):
    assert eight_devices["stack_devices"] == 8
    assert eight_devices["stack_param_diff"] < 1e-5
    assert eight_devices["stack_score_diff"] < 1e-5


def test_batches_padded_to_a_multiple_of_the_device_count():
    idx, mask = epoch_batches(jax.random.key(0), n=20, batch_size=6, multiple=4)
    assert idx.shape == mask.shape == (4, 8)
    assert float(mask.sum()) == 20  # every sample once, padding masked out
    real = np.asarray(idx)[np.asarray(mask) == 1]
    assert sorted(real.tolist()) == list(range(20))


def test_bad_device_counts_raise():
    with pytest.raises(ValueError, match="devices must be between 1 and"):
        sharding.make_mesh(0)
    with pytest.raises(ValueError, match="visible device"):
        sharding.make_mesh(jax.device_count() + 1)


def test_pad_rows():
    x = np.arange(10.0).reshape(5, 2)
    padded = sharding.pad_rows(x, 4)
    assert padded.shape == (8, 2)
    np.testing.assert_array_equal(padded[:5], x)
    assert sharding.pad_rows(x, 5) is x


def _fresh_process(code: str, **env) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "", **env},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split()


def test_cpu_cores_become_devices_only_before_jax_starts():
    code = (
        "import jax\nfrom jax_anomaly import sharding\n"
        "first = sharding.use_cpu_cores_as_devices(3)\n"
        "print(first, jax.device_count(), sharding.train_devices(None), sharding.train_devices(2),"
        " sharding.use_cpu_cores_as_devices(2))"
    )
    # one device per core for scoring; training on a CPU stays on one device unless asked
    assert _fresh_process(code) == ["3", "3", "1", "2", "None"]
    # a count the user chose is kept
    assert _fresh_process(code, XLA_FLAGS="--xla_force_host_platform_device_count=2") == [
        "None",
        "2",
        "1",
        "2",
        "None",
    ]
    started = (
        "import jax\njax.devices()\nfrom jax_anomaly import sharding\n"
        "print(sharding.use_cpu_cores_as_devices(3), jax.device_count())"
    )
    assert _fresh_process(started) == ["None", "1"]


def test_process_shares_cover_every_row_once_in_order():
    for n, count in [(10, 3), (7, 2), (2, 4), (60000, 4)]:
        shares = [sharding.process_share(n, p, count) for p in range(count)]
        assert np.concatenate([np.arange(n)[s] for s in shares]).tolist() == list(range(n))
        assert max(s.stop - s.start for s in shares) == -(-n // count)


def test_each_device_shard_is_permuted_within_itself():
    counts, size, batch = [4, 4, 3, 0], 4, 6  # 11 rows on 4 devices; the last one empty
    idx, mask = (np.asarray(a) for a in sharding_batches(counts, size, batch))
    local = -(-batch // len(counts))
    assert idx.shape == mask.shape == (2, len(counts) * local)
    for d, count in enumerate(counts):
        mine, real = idx[:, d * local : (d + 1) * local], mask[:, d * local : (d + 1) * local] == 1
        assert sorted(mine[real].tolist()) == list(range(count))  # each of its rows once


def sharding_batches(counts, size, batch):
    from jax_anomaly.training.loop import shard_batches

    return shard_batches(jax.random.key(3), counts, size, batch)
