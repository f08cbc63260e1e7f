"""Scoring throughput of any registered detector: the compiled whole-set scorer timed on
its own (inputs placed beforehand), compile time apart, FLOPs counted from the
per-sample score's jaxpr (loops such as AnoGAN's search included)."""

from __future__ import annotations

import io
import time

import jax
import numpy as np
from sklearn.metrics import roc_auc_score

from jax_anomaly.benchmarks import measure, report
from jax_anomaly.benchmarks.train import Target
from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors import Detector, Fitted
from jax_anomaly.sharding import make_mesh, place_samples
from jax_anomaly.training import Progress


def score_flops(det: Detector, fitted: Fitted, x: np.ndarray, key) -> float:
    """FLOPs of scoring one sample, counted from ``make_sample_scorer``'s jaxpr."""
    extra = det.score_inputs(fitted.config, x[:1], key) if det.score_inputs else ()
    one = det.make_sample_scorer(fitted.config, fitted.n_features)
    return float(measure.matmul_flops(measure.step_matmuls(one, fitted.params, x[0], *(e[0] for e in extra))))


def time_progress_cost(det: Detector, fitted: Fitted, x: np.ndarray, key, *, rounds: int = 3) -> dict:
    """What the progress line costs: ``score_checked`` in one compiled call against the same
    scoring with a progress line (one compiled call per chunk, the line written to a buffer),
    alternated ``rounds`` times after a warm-up of each so that the machine's drift hits both
    alike. Both include placing the inputs on the devices."""
    stream = io.StringIO()

    def one_call():
        return det.score_checked(fitted, x, key=key)

    def with_progress():
        bar = Progress(len(x), "score", unit="samples", stream=stream)
        return det.score_checked(fitted, x, key=key, progress=bar)

    a, b = one_call(), with_progress()  # compile both shapes
    lines = len(stream.getvalue().splitlines())
    one, chunked = [], []
    bar = Progress(rounds, "timing one call / with progress", unit="rounds")
    for i in range(rounds):
        one += measure.time_calls(one_call, repeats=1)
        chunked += measure.time_calls(with_progress, repeats=1)
        bar.update(i + 1, {"one": one[-1], "progress": chunked[-1]})
    bar.close()
    return {
        "one_call_seconds": one,
        "progress_seconds": chunked,
        "progress_over_one_call": min(chunked) / min(one),
        "progress_lines": lines,
        "scores_equal": bool(np.array_equal(a["score"], b["score"])),
    }


def time_scoring(
    det: Detector, fitted: Fitted, x: np.ndarray, key, *, repeats: int = 3, peak_around=None
) -> dict:
    """Compile time, then ``repeats`` timed calls of the whole-set scorer over all devices.

    With ``peak_around`` (a report), a ``jnp.dot`` peak is measured right before and after
    each call and recorded: a utilisation ratio can then be taken against the machine's
    speed at that moment (a shared machine drifts 20-40 % within a run).
    """
    mesh = make_mesh()
    extra = det.score_inputs(fitted.config, x, key) if det.score_inputs else ()
    scorer = det.sharded_scorer(fitted.config, fitted.n_features, len(x), mesh)
    params, xs = place_samples(mesh, fitted.params, x, *extra)
    t0 = time.perf_counter()
    compiled = scorer.lower(params, *xs).compile()
    compile_s = time.perf_counter() - t0
    bar = Progress(repeats + 1, f"timing {det.name} on {len(x)} samples", unit="calls")
    bar.update(0)
    out = measure.block(compiled(params, *xs))  # warm-up
    bar.update(1)
    times, adjacent = [], []
    for i in range(repeats):
        before = measure.matmul_peak_gflops(repeats=3)["gflops"] if peak_around else None
        times += measure.time_calls(compiled, params, *xs, repeats=1)
        if peak_around:
            after = measure.matmul_peak_gflops(repeats=3)["gflops"]
            adjacent.append(max(before, after))
            report.note_peak(peak_around, adjacent[-1])
        bar.update(i + 2, {"seconds": times[-1]})
    bar.close()
    return {
        "compile_seconds": compile_s,
        "seconds": min(times),
        "times": times,
        "adjacent_peaks": adjacent,
        "scores": np.asarray(out["score"])[: len(x)],
        "devices": mesh.devices.size,
    }


def score_measurement(name: str, det: Detector, fitted: Fitted, x, timing: dict, key, **details) -> dict:
    """A report row of ``time_scoring``'s ``timing`` of ``x`` (FLOPs counted from the scorer)."""
    return report.measurement(
        name,
        samples=len(x),
        seconds=timing["seconds"],
        flops_per_sample=score_flops(det, fitted, x, key),
        compile_seconds=timing["compile_seconds"],
        details={
            "devices": timing["devices"],
            "seconds_per_10k": timing["seconds"] * 10000 / len(x),
            **details,
        },
    )


def bench_score(
    target: Target, train: TrainConfig | None = None, *, sizes=(10000,), progress: bool = False, out=None
) -> dict:
    """Trains ``detector`` briefly (``train``; throughput does not depend on how well), then
    times scoring ``sizes`` test samples (the test set repeated where larger) and reports
    samples/s, GFLOP/s, fraction of peak (of the run and around each call) and AUROC."""
    train = train or TrainConfig(epochs=1)
    det, cfg, data, rep = target.setup("score", train, sizes=list(sizes))
    x_test = det.to_input(data.x_test)
    fitted = det.fit(cfg, train, det.to_input(data.x_train), None, key=jax.random.key(0), progress=False)
    key = jax.random.key(1)
    for n in sizes:
        x = np.resize(x_test, (n, x_test.shape[1]))
        t = time_scoring(det, fitted, x, jax.random.fold_in(key, n), repeats=3, peak_around=rep)
        flops = score_flops(det, fitted, x, key)
        ratios = [n * flops / s / 1e9 / p for s, p in zip(t["times"], t["adjacent_peaks"], strict=True)]
        details = {"times": t["times"], "fraction_of_adjacent_peak": float(np.median(ratios))}
        if n == len(x_test) and data.y_test.min() != data.y_test.max():
            details["auroc"] = float(roc_auc_score(data.y_test, t["scores"]))
        if progress:
            details["progress"] = time_progress_cost(det, fitted, x, jax.random.fold_in(key, n))
        rep["measurements"].append(
            score_measurement(f"score {det.name} n={n}", det, fitted, x, t, key, **details)
        )
    return report.finish(rep, out)
