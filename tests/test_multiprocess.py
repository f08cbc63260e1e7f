"""Two real processes on localhost joined by ``jax.distributed`` (CPU collectives), started
by ``jax-anomaly launch``: data-parallel training over the two processes ends with the
parameters of one process training over two devices (the same split of every batch; the
all-reduce differs only in summation order: tolerance 1e-5), the gathered scores match,
only process 0 writes the run folder, an ensemble's model axis splits over the processes,
resumes end where uninterrupted runs end, and a failing process stops the launch."""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import jax_anomaly as ja
from jax_anomaly.launch import check_command, launch

RUN = [
    "run",
    "--detector",
    "ae",
    "--dataset",
    "digits",
    "--preset",
    "tiny",
    "--epochs",
    "3",
    "--batch-size",
    "32",
]
RUN += ["--no-plots", "--quiet", "--seed", "1"]
TOL = 1e-5
TIMEOUT_S = 300


def scores(folder):
    with open(folder / "scores.csv") as f:
        return np.array([float(r["score"]) for r in csv.DictReader(f)])


@pytest.fixture(scope="module")
def two_and_one(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multiprocess")
    log = io.StringIO()
    code = launch(2, ["--", *RUN, "--out", str(tmp / "two")], out=log)
    assert code == 0, log.getvalue()[-3000:]
    one_process_two_devices(RUN, tmp / "one")
    return tmp / "two", tmp / "one", log.getvalue()


def one_process_two_devices(argv, out):
    """The reference: ``argv`` in one process over two virtual CPU devices."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = subprocess.run(
        [sys.executable, "-m", "jax_anomaly.cli", *argv, "--devices", "2", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def max_param_diff(a_folder, b_folder) -> float:
    a, b = ja.load(a_folder).fitted_.params, ja.load(b_folder).fitted_.params
    return max(
        jax.tree.leaves(jax.tree.map(lambda x, y: float(np.max(np.abs(np.asarray(x) - np.asarray(y)))), a, b))
    )


def test_two_processes_train_and_score_as_one_process_on_two_devices(two_and_one):
    two, one, log = two_and_one
    assert "[0] " in log and "[1] " in log and "AUROC" in log
    assert max_param_diff(two / "model", one / "model") < TOL
    np.testing.assert_allclose(scores(two), scores(one), rtol=TOL, atol=1e-6)
    assert ja.load(two / "model").threshold_ == pytest.approx(ja.load(one / "model").threshold_, rel=TOL)


def test_an_ensemble_splits_its_model_axis_over_two_processes(tmp_path):
    """--ensemble 4 over 2 processes: each process trains its own 2 models (no all-reduce), the
    stack is gathered; it equals one process whose 2 devices hold 2 models each."""
    ensemble = [*RUN, "--ensemble", "4"]
    log = io.StringIO()
    assert launch(2, [*ensemble, "--out", str(tmp_path / "two")], out=log) == 0, log.getvalue()[-3000:]
    one_process_two_devices(ensemble, tmp_path / "one")
    assert ja.load(tmp_path / "two" / "model").n_models == 4
    assert max_param_diff(tmp_path / "two" / "model", tmp_path / "one" / "model") < TOL
    np.testing.assert_allclose(scores(tmp_path / "two"), scores(tmp_path / "one"), rtol=TOL, atol=1e-6)


def test_each_process_holds_only_its_share_of_the_rows(two_and_one):
    two, one, _ = two_and_one
    data = json.loads((two / "metrics.json").read_text())["data"]
    assert data["share"] == {
        "process": 0,
        "of": 2,
        "train_rows": -(-data["n_train"] // 2),
        "test_rows": -(-data["n_test"] // 2),
    }
    assert json.loads((one / "metrics.json").read_text())["data"]["share"] is None


def test_only_process_zero_writes_the_run_folder(two_and_one, tmp_path):
    two, _, log = two_and_one
    assert (two / "metrics.json").exists() and (two / "model" / "manifest.json").exists()
    assert log.count("run folder:") == 2  # both processes finish and print the summary


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the processes in /proc")
def test_a_process_killed_mid_run_stops_the_launch(tmp_path):
    """Process 1 is killed while training; process 0, then blocked in a collective, is stopped
    and the launcher exits with process 1's code and one message."""
    marker = str(tmp_path / "killed")
    long_run = [*RUN, "--epochs", "100000", "--out", marker]
    launcher = subprocess.Popen(
        [sys.executable, "-m", "jax_anomaly.cli", "launch", "--processes", "2", "--", *long_run],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    children = []
    for _ in range(600):  # until both children train (their progress reaches the launcher)
        children = _pids(marker)
        if len(children) == 2 and (tmp_path / "killed" / "config.json").exists():
            break
        time.sleep(0.1)
    time.sleep(3.0)
    victim = next(pid for pid, cmd in children if cmd.endswith("--process-id 1"))
    os.kill(victim, signal.SIGKILL)
    _, err = launcher.communicate(timeout=60)
    assert launcher.returncode != 0
    assert "process 1 of 2 exited with code -9" in err
    assert _pids(marker) == []  # process 0 stopped too


RESUMABLE = [
    "run",
    "--detector",
    "ae",
    "--dataset",
    "synthetic",
    "--preset",
    "tiny",
    "--batch-size",
    "32",
    "--epochs",
    "100",
]
RESUMABLE += ["--checkpoint-every", "10", "--quiet", "--no-plots", "--seed", "3"]


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the processes in /proc")
def test_killed_multi_process_run_resumes_to_the_uninterrupted_parameters(tmp_path):
    """Process 1 is killed after a checkpoint; the launch stops; the same launch with
    --resume (both processes read process 0's checkpoint) ends where a run that was never
    interrupted ends (one process over two devices: bit-equal above)."""
    killed = tmp_path / "killed"
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jax_anomaly.cli",
            "launch",
            "--processes",
            "2",
            "--",
            *RESUMABLE,
            "--out",
            str(killed),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + TIMEOUT_S
    while not (killed / "checkpoint.msgpack").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    victim = next(pid for pid, cmd in _pids(str(killed)) if cmd.endswith("--process-id 1"))
    os.kill(victim, signal.SIGKILL)
    launcher.communicate(timeout=60)
    assert launcher.returncode != 0 and not (killed / "metrics.json").exists(), "finished before the kill"
    log = io.StringIO()
    assert launch(2, [*RESUMABLE, "--out", str(killed), "--resume"], out=log) == 0, log.getvalue()[-3000:]
    one_process_two_devices(RESUMABLE, tmp_path / "uninterrupted")
    assert max_param_diff(killed / "model", tmp_path / "uninterrupted" / "model") < TOL


def _pids(marker: str) -> list[tuple[int, str]]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode().strip()
            except OSError:
                continue
            if marker in cmd and "--process-id" in cmd:
                found.append((int(entry), cmd))
    return found


@pytest.mark.parametrize(
    "argv,match",
    [
        ([], "needs a command"),
        (["bench"], "needs a command"),
        (["run", "--process-id", "0"], "sets --process-id itself"),
    ],
)
def test_launch_rejects_bad_commands(argv, match):
    with pytest.raises(ValueError, match=match):
        check_command(argv, 2)
    with pytest.raises(ValueError, match="processes must be"):
        check_command(["run"], 0)
