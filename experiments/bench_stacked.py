"""Many models as one program: aggregate training samples/s of K stacked models (the dense
AE 784-128-64-12-3 and the MLP GAN of AnoGAN's ``mnist_tutorial`` preset, batch 128, Adam,
MNIST-sized random data) for each group size (models vmapped together; the groups run one
after another in the same program; group = K is plain vmap), beside K models trained one
after another with ``Detector.fit``; compile time apart. Ratios are taken against the
one-model stack measured in the same process (this machine drifts between runs), and the
fraction of the in-run ``jnp.dot`` peak counts the step's matrix products only.

    python experiments/bench_stacked.py                       # ae, K = 1, 2, 4, 8; ~5 min on 2 cores
    python experiments/bench_stacked.py --detectors ae,anogan --models 1,2,4,16,64 --groups 1,2,4,16,64

Writes ``<out>/<name>.json`` (default ``bench_stacked``); the measured CPU figures are in
docs/benchmarks.md and set ``training.stacked.DEFAULT_GROUP``. ``state_mib``: the K models'
parameters and optimiser states; ``peak_rss_mib``: this process's peak resident memory so far
(host memory, where a CPU's arrays live; it only grows).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import jax
import numpy as np

from jax_anomaly.benchmarks.measure import matmul_flops, matmul_peak_gflops, peak_rss_mib, step_matmuls
from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors import get_detector
from jax_anomaly.detectors.stack import fit_stack_detector
from jax_anomaly.environment import versions


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--detectors", default="ae", help="ae and/or anogan (its MLP GAN's training)")
    p.add_argument("--models", default="1,2,4,8")
    p.add_argument("--groups", default="1,2,4,8", help="group sizes tried (those <= K)")
    p.add_argument("--samples", type=int, default=6000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--separate-up-to", type=int, default=16, help="fit one at a time only up to this K")
    p.add_argument("--out", default="results/benchmarks")
    p.add_argument("--name", default="bench_stacked", help="output file name (without .json)")
    args = p.parse_args(argv)
    x = np.random.default_rng(0).random((args.samples, 784)).astype(np.float32)
    train = TrainConfig(epochs=args.epochs, batch_size=128)
    peak = matmul_peak_gflops()
    print(f"in-run jnp.dot peak: {peak['gflops']:.1f} GFLOP/s", flush=True)
    rows, flops_by = [], {}
    for name in args.detectors.split(","):
        det = get_detector(name)
        cfg = det.presets["mnist_tutorial"]
        x_in = det.to_input(x)
        flops = flops_by[name] = sample_flops(det, cfg, train, x_in)
        for k in (int(v) for v in args.models.split(",")):
            keys = [jax.random.key(i) for i in range(k)]
            for g in (int(v) for v in args.groups.split(",")):
                if g > k:
                    continue
                stack = fit_stack_detector(det, [cfg] * k, train, x_in, keys=keys, group=g, progress=False)
                r = stack.result
                rows.append(row(name, k, g, k * args.epochs * args.samples / r.train_seconds, r, flops, peak))
                rows[-1]["state_mib"] = tree_mib(stack.state)
                print(rows[-1], flush=True)
            if k > args.separate_up_to:
                continue
            t, c = 0.0, 0.0
            for key in keys:
                fitted = det.fit(cfg, train, x_in, key=key, progress=False)
                t, c = t + fitted.result.train_seconds, c + fitted.result.compile_seconds
            done = FitTimes(t, c)
            rows.append(
                row(name, k, "one after another (fit)", k * args.epochs * args.samples / t, done, flops, peak)
            )
            print(rows[-1], flush=True)
    for name in dict.fromkeys(r["detector"] for r in rows):
        base = next(
            r["samples_per_s"] for r in rows if r["detector"] == name and r["models"] == 1 and r["group"] == 1
        )
        for r in rows:
            if r["detector"] == name:
                r["vs_one_model_stack"] = r["samples_per_s"] / base
    record = {
        "rows": rows,
        "peak": peak,
        "matmul_flops_per_sample": flops_by,
        "backend": jax.default_backend(),
        "versions": versions(),
        "date": time.strftime("%Y-%m-%d"),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(record, indent=2))
    print(
        "| detector | models | group | samples/s | vs 1 model | of peak | train s | compile s | state MiB |\n"
        "|---|---:|---|---:|---:|---:|---:|---:|---:|"
    )
    for r in rows:
        print(
            f"| {r['detector']} | {r['models']} | {r['group']} | {r['samples_per_s']:,.0f} | "
            f"{r['vs_one_model_stack']:.2f} | {r['fraction_of_peak']:.2f} | {r['train_s']:.1f} | "
            f"{r['compile_s']:.1f} | {r.get('state_mib', float('nan')):.1f} |"
        )
    return record


@dataclasses.dataclass
class FitTimes:
    train_seconds: float
    compile_seconds: float


def row(name, k, group, samples_per_s, result, flops, peak) -> dict:
    return {
        "detector": name,
        "models": k,
        "group": group,
        "samples_per_s": samples_per_s,
        "fraction_of_peak": samples_per_s * flops / (peak["gflops"] * 1e9),
        "train_s": result.train_seconds,
        "compile_s": result.compile_seconds,
        "peak_rss_mib": peak_rss_mib(),
    }


def sample_flops(det, cfg, train, x) -> float:
    """Matrix-product FLOPs per training sample of one model's step (all its phases' first)."""
    phase = det.phases[0]
    state = phase.init_state(cfg, train, x.shape[1], jax.random.key(0))
    step = phase.make_step(cfg, train, x.shape[1])
    batch = x[: train.batch_size]
    matmuls = step_matmuls(step, state, batch, np.ones(len(batch), np.float32), jax.random.key(1))
    return matmul_flops(matmuls) / len(batch)


def tree_mib(tree) -> float:
    return sum(np.asarray(a).nbytes for a in jax.tree.leaves(tree) if hasattr(a, "shape")) / 2**20


if __name__ == "__main__":
    main()
