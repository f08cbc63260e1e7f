"""Time of the default series detector (``SeriesDetector()``: multi-length discords) on
long series: fit plus scoring of the whole series, as the ``ucr`` suite runs it, at several
lengths (seeded sine plus noise with one bump), and the matrix-profile join's throughput
(query-reference pairs per second) beside the in-run ``jnp.dot`` peak.

    python experiments/bench_series.py [--lengths 10000 100000 250000]

Writes results/benchmarks/bench_series.json. The first call of each shape compiles; the
times below are a second call (compile time reported apart).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

import jax_anomaly as ja
from jax_anomaly.benchmarks.measure import matmul_peak_gflops
from jax_anomaly.environment import versions
from jax_anomaly.timeseries.profile import join, window_rows


def series(n: int, seed: int = 0) -> tuple[np.ndarray, int, int]:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = np.sin(2 * np.pi * t / 120) + 0.5 * np.sin(2 * np.pi * t / 37) + 0.05 * rng.normal(size=n)
    at = int(0.7 * n)
    x[at : at + 60] += 0.8
    return x, n // 5, at


def fit_score(n: int) -> dict:
    x, train_end, at = series(n)
    times = []
    for _ in range(2):  # the first call compiles the join's blocks
        t0 = time.perf_counter()
        det = ja.SeriesDetector().fit(x[:train_end])
        t1 = time.perf_counter()
        scores = det.decision_function(x)
        t2 = time.perf_counter()
        times.append((t1 - t0, t2 - t1))
    top = train_end + int(np.argmax(scores[train_end:]))
    return {
        "points": n,
        "fit_seconds": times[1][0],
        "score_seconds": times[1][1],
        "total_seconds": sum(times[1]),
        "first_call_seconds": sum(times[0]),
        "found_the_bump": bool(at - 100 <= top < at + 160),
    }


def join_rate(n_queries: int = 8192, n_refs: int = 20_000, length: int = 64) -> dict:
    x = np.random.default_rng(0).normal(size=(n_refs + length, 1)).astype(np.float32)
    w = window_rows(x, length, True)[:n_refs]
    pos = np.arange(len(w))
    q = w[:n_queries]
    join(q, pos[:n_queries], w, pos, pos < n_refs // 2, length // 2)  # compile
    t0 = time.perf_counter()
    join(q, pos[:n_queries], w, pos, pos < n_refs // 2, length // 2)
    s = time.perf_counter() - t0
    flops = 2.0 * n_queries * n_refs * length
    return {
        "queries": n_queries,
        "references": n_refs,
        "length": length,
        "seconds": s,
        "pairs_per_second": n_queries * n_refs / s,
        "gflops": flops / s / 1e9,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", type=int, nargs="+", default=[10_000, 100_000, 250_000])
    p.add_argument("--out", default="results/benchmarks/bench_series.json")
    a = p.parse_args()
    peak = matmul_peak_gflops()["gflops"]
    rate = join_rate()
    rows = [fit_score(n) for n in a.lengths]
    report = {
        "benchmark": "series",
        "versions": versions(),
        "device": jax.devices()[0].device_kind,
        "matmul_peak_gflops": peak,
        "join": {**rate, "share_of_peak": rate["gflops"] / peak},
        "fit_score": rows,
    }
    print(
        f"join {rate['queries']} x {rate['references']} windows of {rate['length']}: "
        f"{rate['seconds']:.2f} s, "
        f"{rate['pairs_per_second'] / 1e6:.0f} M pairs/s, {rate['gflops']:.1f} GFLOP/s "
        f"({100 * rate['gflops'] / peak:.0f} % of the {peak:.0f} GFLOP/s matmul peak)"
    )
    for r in rows:
        print(
            f"{r['points']:>8,} points: fit {r['fit_seconds']:.2f} s + score {r['score_seconds']:.1f} s "
            f"= {r['total_seconds']:.1f} s (first call {r['first_call_seconds']:.1f} s); "
            f"bump found: {r['found_the_bump']}"
        )
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
