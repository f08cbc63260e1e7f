"""The default tabular detector's fit and score times against the number of rows, as a user
calls it (``AnomalyDetector().fit(X).decision_function(X)``): the first call (compile
included) and a second one on the same shapes (compiled), so compile time is their
difference. Rows are random (distance arithmetic does not depend on values); FLOPs are the
per-sample score's matrix products counted from its jaxpr."""

from __future__ import annotations

import time

import numpy as np

from jax_anomaly.benchmarks import measure, report
from jax_anomaly.training import Progress


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench_tabular(
    *,
    rows: tuple[int, ...] = (10_000, 100_000, 1_000_000),
    features: int = 100,
    warm_below: int = 200_000,
    out=None,
) -> dict:
    """Per row count N: fit on N rows and score the same N rows; sizes below ``warm_below``
    are run twice (the second time compiled). Returns the report (``report.finish``)."""
    import jax_anomaly as ja
    from jax_anomaly.benchmarks.score import score_flops
    from jax_anomaly.detectors import get_detector

    rep = report.new_report("tabular", {"rows": list(rows), "features": features, "detector": "tabular"})
    bar = Progress(len(rows), "tabular fit+score", unit="sizes")
    for i, n in enumerate(rows):
        x = np.random.default_rng(n).normal(size=(n, features)).astype(np.float32)
        runs = []
        for _ in range(2 if n < warm_below else 1):
            est, fit_s = _timed(lambda x=x: ja.AnomalyDetector(seed=0).fit(x))
            _, score_s = _timed(lambda est=est, x=x: est.decision_function(x))
            runs.append((fit_s, score_s))
        fit_s, score_s = runs[-1]
        compile_s = None if len(runs) == 1 else sum(runs[0]) - sum(runs[-1])
        flops = score_flops(get_detector("tabular"), est.fitted_, x[:1], None)
        details = {
            "rows": n,
            "features": features,
            "fit_seconds": fit_s,
            "score_seconds": score_s,
            "fit_and_score_seconds": fit_s + score_s,
            "first_call_fit_and_score_seconds": sum(runs[0]),
            "reference_rows": int(len(est.fitted_.params["ref_index"])),
        }
        rep["measurements"].append(
            report.measurement(
                f"score {n:,} x {features}",
                samples=n,
                seconds=score_s,
                flops_per_sample=flops,
                compile_seconds=compile_s,
                details=details,
            )
        )
        bar.update(i + 1, {"fit_s": fit_s, "score_s": score_s})
        print(
            f"  {n:>9,} rows: fit {fit_s:7.2f} s, score {score_s:7.2f} s, first call (compile included) "
            f"{sum(runs[0]):7.2f} s",
            flush=True,
        )
        report.note_peak(rep, measure.matmul_peak_gflops()["gflops"])
    return report.finish(rep, out)
