"""Many models as one program: aggregate training samples/s of K stacked models (dense AE
784-128-64-12-3, batch 128, Adam, MNIST-sized random data) for each group size (models
vmapped together; the groups run one after another in the same program), beside K models
trained one after another with ``Detector.fit``; compile time apart. Ratios are taken against
the one-model stack measured in the same process (this machine drifts between runs).

    python experiments/bench_stacked.py                       # K = 1, 2, 4, 8; ~5 min on 2 cores
    python experiments/bench_stacked.py --models 1,16 --groups 1,2,16 --out results

Writes ``<out>/bench_stacked.json``; the measured CPU figures are in docs/benchmarks.md and
set ``training.stacked.DEFAULT_GROUP``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors import get_detector
from jax_anomaly.detectors.stack import fit_stack_detector
from jax_anomaly.environment import versions


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="1,2,4,8")
    p.add_argument("--groups", default="1,2,4,8", help="group sizes tried (those <= K)")
    p.add_argument("--samples", type=int, default=6000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--out", default="results")
    args = p.parse_args(argv)
    det = get_detector("ae")
    cfg = det.presets["mnist_tutorial"]
    x = np.random.default_rng(0).random((args.samples, 784)).astype(np.float32)
    train = TrainConfig(epochs=args.epochs, batch_size=128)
    rows = []
    for k in (int(v) for v in args.models.split(",")):
        keys = [jax.random.key(i) for i in range(k)]
        for g in (int(v) for v in args.groups.split(",")):
            if g > k:
                continue
            stack = fit_stack_detector(det, [cfg] * k, train, x, keys=keys, group=g, progress=False)
            r = stack.result
            rows.append(
                {
                    "models": k,
                    "group": g,
                    "samples_per_s": k * args.epochs * args.samples / r.train_seconds,
                    "train_s": r.train_seconds,
                    "compile_s": r.compile_seconds,
                }
            )
            print(rows[-1], flush=True)
        t, c = 0.0, 0.0
        for key in keys:
            fitted = det.fit(cfg, train, x, key=key, progress=False)
            t, c = t + fitted.result.train_seconds, c + fitted.result.compile_seconds
        rows.append(
            {
                "models": k,
                "group": "one after another (fit)",
                "samples_per_s": k * args.epochs * args.samples / t,
                "train_s": t,
                "compile_s": c,
            }
        )
        print(rows[-1], flush=True)
    base = next(r["samples_per_s"] for r in rows if r["models"] == 1 and r["group"] == 1)
    for r in rows:
        r["vs_one_model_stack"] = r["samples_per_s"] / base
    record = {
        "rows": rows,
        "backend": jax.default_backend(),
        "versions": versions(),
        "date": time.strftime("%Y-%m-%d"),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_stacked.json").write_text(json.dumps(record, indent=2))
    print("| models | group | samples/s | vs 1 model | train s | compile s |\n|---:|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['models']} | {r['group']} | {r['samples_per_s']:,.0f} | {r['vs_one_model_stack']:.2f} | "
            f"{r['train_s']:.1f} | {r['compile_s']:.1f} |"
        )
    return record


if __name__ == "__main__":
    main()
