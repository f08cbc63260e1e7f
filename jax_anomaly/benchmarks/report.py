"""The one JSON schema every benchmark writes (``docs/benchmarks.md`` documents it)."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import jax

from jax_anomaly.benchmarks import measure
from jax_anomaly.environment import versions
from jax_anomaly.persistence import write_json

SCHEMA = "jax_anomaly.benchmark/1"


def new_report(benchmark: str, settings: dict) -> dict:
    """A report's head: schema, benchmark name, date, versions, device, settings, and the
    ``jnp.dot`` peak measured now (``peak.before``); ``finish`` adds the one after."""
    dev = jax.devices()[0]
    peak = measure.matmul_peak_gflops()
    return {
        "schema": SCHEMA,
        "benchmark": benchmark,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "versions": versions(),
        "device": {
            "platform": dev.platform,
            "kind": dev.device_kind,
            "count": jax.device_count(),
            "processes": jax.process_count(),
        },
        "settings": settings,
        "peak": {
            "n": peak["n"],
            "precision": peak["precision"],
            "before": peak["gflops"],
            "seen": [peak["gflops"]],
        },
        "measurements": [],
    }


def measurement(
    name: str,
    *,
    samples: int,
    seconds: float,
    flops_per_sample: float | None,
    compile_seconds: float | None,
    details: dict | None = None,
) -> dict:
    """One row of ``measurements``: the same keys in every benchmark (None where a figure
    does not apply); ``finish`` fills ``fraction_of_peak`` against the run's best peak."""
    gflops = None if flops_per_sample is None else samples * flops_per_sample / seconds / 1e9
    return {
        "name": name,
        "samples": samples,
        "seconds": seconds,
        "samples_per_second": samples / seconds,
        "flops_per_sample": flops_per_sample,
        "gflops": gflops,
        "fraction_of_peak": None,
        "compile_seconds": compile_seconds,
        "memory": {"peak_rss_mib": measure.peak_rss_mib(), "device_peak_mib": measure.device_memory_mib()},
        "details": details or {},
    }


def finish(report: dict, out: str | None) -> dict:
    """Measures the peak again, sets ``peak.best`` (the fastest seen in the run: the
    conservative reference) and each row's ``fraction_of_peak``, prints the rows and writes
    the JSON to ``out``."""
    after = measure.matmul_peak_gflops()["gflops"]
    peak = report["peak"]
    peak.update(after=after, best=max(after, *peak.pop("seen")))
    for row in report["measurements"]:
        if row["gflops"] is not None:
            row["fraction_of_peak"] = row["gflops"] / peak["best"]
    print(f"{report['benchmark']} on {report['device']['kind']}: jnp.dot peak {peak['best']:,.1f} GFLOP/s")
    for row in report["measurements"]:
        ratio = "" if row["fraction_of_peak"] is None else f"  {row['fraction_of_peak']:.2f} of peak"
        gflops = "" if row["gflops"] is None else f"  {row['gflops']:,.1f} GFLOP/s"
        compile_s = "" if row["compile_seconds"] is None else f"  compile {row['compile_seconds']:.2f} s"
        print(f"  {row['name']:34s} {row['samples_per_second']:12,.0f} samples/s{gflops}{ratio}{compile_s}")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_json(Path(out), report)
        print(f"wrote {out}", file=sys.stderr)
    return report


def note_peak(report: dict, gflops: float) -> None:
    """Records a peak measured during the run (counts toward ``peak.best``)."""
    report["peak"]["seen"].append(gflops)
