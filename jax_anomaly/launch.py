"""Local multi-process runs: N processes of one ``jax-anomaly`` command on this machine,
joined by JAX's own multi-process runtime (``jax.distributed``, CPU collectives over Gloo),
as they would run on N hosts.

    jax-anomaly launch --processes 2 -- run --detector ae --dataset digits --out runs/two

Each process gets ``--distributed --coordinator localhost:PORT --num-processes N
--process-id i``; their output is forwarded with a ``[i]`` prefix. When one process fails,
the others are stopped and the launcher exits with its code and one message.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

LAUNCHED = ("run", "demo")
OWN_FLAGS = ("--distributed", "--coordinator", "--num-processes", "--process-id")
STOP_GRACE_S = 10.0


def free_port() -> int:
    """A TCP port on localhost that is free now (for the coordinator)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def process_command(argv: list[str], processes: int, index: int, port: int) -> list[str]:
    """The command line of process ``index``: this Python running the CLI with ``argv`` and
    the coordinator flags."""
    return [
        sys.executable,
        "-m",
        "jax_anomaly.cli",
        *argv,
        "--distributed",
        "--coordinator",
        f"localhost:{port}",
        "--num-processes",
        str(processes),
        "--process-id",
        str(index),
    ]


def check_command(argv: list[str], processes: int) -> list[str]:
    """``argv`` without a leading ``--``.

    Raises:
      ValueError: fewer than 1 process, no ``run``/``demo`` command, or coordinator flags
        the launcher sets itself.
    """
    if not isinstance(processes, int) or processes < 1:
        raise ValueError(f"--processes must be an integer >= 1, got {processes!r}")
    argv = list(argv[1:] if argv and argv[0] == "--" else argv)
    if not argv or argv[0] not in LAUNCHED:
        raise ValueError(
            "launch needs a command to run: jax-anomaly launch --processes 2 -- run --detector ..."
        )
    taken = sorted({a.split("=")[0] for a in argv} & set(OWN_FLAGS))
    if taken:
        raise ValueError(f"launch sets {', '.join(taken)} itself; leave them out of the command")
    return argv


def launch(
    processes: int, argv: list[str], *, port: int | None = None, env: dict | None = None, out=None
) -> int:
    """Runs ``argv`` (a ``jax-anomaly`` command, e.g. ``['run', '--detector', 'ae']``) in
    ``processes`` processes and waits for them.

    Returns:
      0 when every process succeeded; else the exit code of the first that failed (the
      others are stopped: SIGTERM, then SIGKILL after ``STOP_GRACE_S``).

    Raises:
      ValueError: a bad command (``check_command``).
    """
    argv = check_command(argv, processes)
    out = out or sys.stdout
    port = port or free_port()
    env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    lock = threading.Lock()
    procs = [
        subprocess.Popen(
            process_command(argv, processes, i, port),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env=env,
        )
        for i in range(processes)
    ]

    def forward(i: int, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            with lock:
                out.write(f"[{i}] {line}" if line.endswith("\n") else f"[{i}] {line}\n")
                out.flush()

    threads = [threading.Thread(target=forward, args=(i, p), daemon=True) for i, p in enumerate(procs)]
    for t in threads:
        t.start()
    failed = None
    try:
        while failed is None and any(p.poll() is None for p in procs):
            failed = next((i for i, p in enumerate(procs) if p.poll() not in (None, 0)), None)
            time.sleep(0.05)
        failed = next((i for i, p in enumerate(procs) if p.poll() not in (None, 0)), failed)
    except KeyboardInterrupt:
        _stop(procs)
        print("jax-anomaly launch: interrupted; stopped every process", file=sys.stderr)
        return 130
    if failed is not None:
        _stop(procs)
    for t in threads:
        t.join(timeout=STOP_GRACE_S)
    if failed is None:
        return 0
    code = procs[failed].returncode
    print(
        f"jax-anomaly launch: process {failed} of {processes} exited with code {code}; "
        "stopped the others (its output above is prefixed [" + str(failed) + "])",
        file=sys.stderr,
    )
    return code if code > 0 else 1


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
