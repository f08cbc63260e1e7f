"""A training process killed with SIGKILL and resumed ends with exactly the parameters of an
uninterrupted run (same flags, same seed): the autoencoder, and f-AnoGAN killed in its second
(encoder) phase, whose GAN phase had already finished."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from flax import serialization

import jax_anomaly as ja

COMMON = ["--dataset", "synthetic", "--preset", "tiny", "--batch-size", "8"]
COMMON += ["--checkpoint-every", "50", "--quiet", "--no-plots", "--seed", "3"]
# detector flags, and the checkpoint whose appearance says the run is where it should be killed
CASES = {
    "ae": (["--detector", "ae", "--epochs", "600"], "checkpoint.msgpack"),
    "fanogan": (
        ["--detector", "fanogan", "--epochs", "60", "--encoder-epochs", "3000"],
        "checkpoint.msgpack.encoder",
    ),
}


def _cli(case, out, *extra):
    return [
        sys.executable,
        "-m",
        "jax_anomaly.cli",
        "run",
        *COMMON,
        *CASES[case][0],
        "--out",
        str(out),
        *extra,
    ]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
@pytest.mark.parametrize("case", sorted(CASES))
def test_killed_run_resumes_to_identical_parameters(tmp_path, case):
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cli(case, killed), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = killed / CASES[case][1]
    deadline = time.monotonic() + 120
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists(), proc.stderr.read().decode()[-2000:]
    assert not (killed / "metrics.json").exists(), "the run finished before it could be killed"
    from jax_anomaly import persistence

    meta = json.loads(persistence.from_bytes(ckpt.read_bytes(), what="checkpoint")["meta"])
    assert 0 < meta["epoch"] < meta["epochs"] == int(CASES[case][0][-1])  # killed mid-phase

    done = subprocess.run(_cli(case, killed, "--resume"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    whole = tmp_path / "whole"
    done = subprocess.run(_cli(case, whole), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    a, b = ja.load(killed / "model"), ja.load(whole / "model")
    leaves_a = serialization.to_state_dict(a.fitted_.state)
    leaves_b = serialization.to_state_dict(b.fitted_.state)
    import jax

    for x, y in zip(jax.tree.leaves(leaves_a), jax.tree.leaves(leaves_b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert jax.tree.leaves(leaves_a), "no training state saved"
    assert a.threshold_ == b.threshold_
