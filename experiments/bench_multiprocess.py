"""Multi-process overhead: the same run (dense AE on the bundled 8x8 digits, digit 0 normal)
in 1, 2 and 4 local processes joined by ``jax.distributed`` (``jax-anomaly launch``), each
process one CPU device, so every step's gradient is all-reduced across processes over Gloo.
On one machine the processes share its cores: this measures the cost of the cross-process
all-reduce per step and checks that the runs agree, not a speed-up. Each process reads and
holds only its share of the training and test rows; N processes are compared with one
process over N devices (the same shards and batches; each device permutes its own shard).

    python experiments/bench_multiprocess.py                  # 1, 2, 4 processes; ~2 min on 2 cores
    python experiments/bench_multiprocess.py --processes 1,2 --epochs 50

Writes ``<out>/bench_multiprocess.json``: per process count, ms per training step (compile
apart), compile seconds, AUROC, the rows process 0 held, and the largest parameter difference
from one process over as many devices.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

import jax_anomaly as ja
from jax_anomaly.environment import versions
from jax_anomaly.launch import launch


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--processes", default="1,2,4")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", default="results/benchmarks")
    args = p.parse_args(argv)
    common = ["run", "--detector", "ae", "--dataset", "digits", "--epochs", str(args.epochs)]
    common += ["--batch-size", str(args.batch_size), "--quiet", "--no-plots", "--seed", "0"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(v) for v in args.processes.split(",")):
            folder = Path(tmp) / f"p{n}"
            log = io.StringIO()
            t0 = time.perf_counter()
            code = launch(n, [*common, "--out", str(folder)], out=log)
            wall = time.perf_counter() - t0
            if code:
                raise SystemExit(f"{n} processes failed:\n{log.getvalue()[-3000:]}")
            summary = json.loads((folder / "metrics.json").read_text())
            t = summary["timings"]
            steps = summary["training"]["epochs_run"] * math.ceil(
                summary["data"]["n_train"] / args.batch_size
            )
            params = ja.load(folder / "model").fitted_.params
            reference = ja.load(one_process(common, n, Path(tmp) / f"d{n}") / "model").fitted_.params
            diff = max(
                jax.tree.leaves(
                    jax.tree.map(
                        lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))), params, reference
                    )
                )
            )
            share = summary["data"]["share"] or {"train_rows": summary["data"]["n_train"]}
            row = {
                "processes": n,
                "ms_per_step": 1e3 * t["train_seconds"] / steps,
                "steps": steps,
                "compile_s": t["compile_seconds"],
                "wall_s": wall,
                "auroc": summary["metrics"]["auroc"],
                "n_train": summary["data"]["n_train"],
                "train_rows_held_by_process_0": share["train_rows"],
                "max_param_diff_vs_one_process_same_devices": diff,
            }
            rows.append(row)
            print(
                f"{n} process(es): {row['ms_per_step']:.3f} ms/step ({steps} steps), compile "
                f"{row['compile_s']:.2f} s, wall {wall:.1f} s, AUROC {row['auroc']:.4f}, "
                f"process 0 held {share['train_rows']} of {summary['data']['n_train']} training rows, "
                f"max |param - 1 process on {n} devices| {diff:.2e}",
                flush=True,
            )
    base = rows[0]["ms_per_step"]
    for r in rows:
        r["step_time_vs_first"] = r["ms_per_step"] / base
    record = {"rows": rows, "settings": vars(args), "versions": versions(), "date": time.strftime("%Y-%m-%d")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_multiprocess.json").write_text(json.dumps(record, indent=2))
    return record


def one_process(argv: list[str], devices: int, out: Path) -> Path:
    """``argv`` in one process over ``devices`` virtual CPU devices (the reference)."""
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    command = [sys.executable, "-m", "jax_anomaly.cli", *argv, "--devices", str(devices), "--out", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"one process over {devices} devices failed:\n{done.stderr[-3000:]}")
    return out


if __name__ == "__main__":
    main()
