"""A training process killed with SIGKILL and resumed ends with exactly the parameters of an
uninterrupted run (same flags, same seed)."""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from flax import serialization

import jax_anomaly as ja

ARGS = ["run", "--dataset", "synthetic", "--preset", "tiny", "--epochs", "600", "--batch-size", "8"]
ARGS += ["--checkpoint-every", "50", "--quiet", "--no-plots", "--seed", "3"]


def _cli(out, *extra):
    return [sys.executable, "-m", "jax_anomaly.cli", *ARGS, "--out", str(out), *extra]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_killed_run_resumes_to_identical_parameters(tmp_path):
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cli(killed), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = killed / "checkpoint.msgpack"
    deadline = time.monotonic() + 120
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists(), proc.stderr.read().decode()[-2000:]
    assert not (killed / "metrics.json").exists(), "the run finished before it could be killed"
    from jax_anomaly import persistence

    epoch = persistence.from_bytes(ckpt.read_bytes(), what="checkpoint")["meta"]
    assert '"epoch": ' in epoch and '"epoch": 600' not in epoch

    done = subprocess.run(_cli(killed, "--resume"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    whole = tmp_path / "whole"
    done = subprocess.run(_cli(whole), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    a, b = ja.load(killed / "model"), ja.load(whole / "model")
    leaves_a = serialization.to_state_dict(a.fitted_.state)
    leaves_b = serialization.to_state_dict(b.fitted_.state)
    import jax

    for x, y in zip(jax.tree.leaves(leaves_a), jax.tree.leaves(leaves_b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert int(a.fitted_.state.step) == int(b.fitted_.state.step) > 0
    assert a.threshold_ == b.threshold_
