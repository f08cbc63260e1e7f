"""Scoring a ``defects`` model (the photographs' default detector) at several scoring chunk
sizes (``DefectsConfig.score_batch``: images vmapped together): seconds an image (compile
apart, reported separately), the process's peak memory, and whether the scores and maps are
the same bits. Each size runs in its own process (the peak resident memory is a process's).

    python experiments/bench_defects_score.py [--batches 64,16,8,2] [--images 128] [--side 128]

The model is the default network after one epoch on random images (the cost of scoring does
not depend on what it learned), its bank holding their patches.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from jax_anomaly.environment import versions


def one(batch: int, images: int, side: int, out: str) -> None:
    """In the child: fit, score twice (the first compiles), write the figures and outputs."""
    import jax

    from jax_anomaly.config import TrainConfig
    from jax_anomaly.detectors import defects

    rng = np.random.default_rng(0)
    x = rng.random((64, side * side), dtype=np.float32)
    test = rng.random((images, side * side), dtype=np.float32)
    cfg = defects.DefectsConfig(resize_to=side, score_batch=batch)
    fitted = defects.DETECTOR.fit(
        cfg, TrainConfig(epochs=1, batch_size=16), x, key=jax.random.key(0), progress=False
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    t0 = time.perf_counter()
    defects.DETECTOR.score(fitted, test[:batch])
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = defects.DETECTOR.score(fitted, test)
    seconds = time.perf_counter() - t0
    np.savez(out, score=np.asarray(got["score"]), map=np.asarray(got["map"]))
    figures = {
        "seconds_per_image": seconds / images,
        "compile_and_first_chunk_seconds": first,
        "peak_rss_gb_before_scoring": before,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }
    Path(out).with_suffix(".json").write_text(json.dumps(figures))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", default="64,16,8,2")
    p.add_argument("--images", type=int, default=128)
    p.add_argument("--side", type=int, default=128)
    p.add_argument("--out", default="results/benchmarks/bench_defects_score.json")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child is not None:
        return one(a.child, a.images, a.side, a.child_out)
    runs, outputs = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        for batch in (int(b) for b in a.batches.split(",")):
            out = str(Path(folder) / f"b{batch}.npz")
            argv = [sys.executable, __file__, "--child", str(batch), "--child-out", out]
            subprocess.run([*argv, "--images", str(a.images), "--side", str(a.side)], check=True)
            runs[batch] = json.loads(Path(out).with_suffix(".json").read_text())
            with np.load(out) as z:
                outputs[batch] = {k: z[k] for k in z.files}
            r = runs[batch]
            print(
                f"score_batch {batch}: {r['seconds_per_image']:.3f} s an image, peak memory "
                f"{r['peak_rss_gb']:.1f} GB ({r['peak_rss_gb_before_scoring']:.1f} GB after fitting); "
                f"compile and first chunk {r['compile_and_first_chunk_seconds']:.1f} s",
                flush=True,
            )
    first = next(iter(outputs.values()))
    same = all(np.array_equal(o[k], first[k]) for o in outputs.values() for k in first)
    print(f"scores and maps the same bits at every size: {same}")
    report = {
        "benchmark": "defects_score",
        "versions": versions(),
        "settings": {"images": a.images, "side": a.side},
        "same_bits": bool(same),
        "runs": {str(k): v for k, v in runs.items()},
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
