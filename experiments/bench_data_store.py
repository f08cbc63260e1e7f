"""What a run's data costs in memory, held whole or kept on disk (``--stream-rows``): the peak
of the process's heap (``tracemalloc``: NumPy's arrays, not the memory-mapped pages) and the
seconds of ``runner.prepare_data`` (load, decode, one-class split), in memory and streamed;
streamed twice: the first run decodes the photographs into the store, the second reads it.

    python experiments/bench_data_store.py [--dataset magnetic_tile] [--size 256]

Needs the data set in a data root (``../shared/data`` here).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

from jax_anomaly.config import DataConfig, TrainConfig
from jax_anomaly.environment import versions
from jax_anomaly.runner import RunConfig, prepare_data


def measured(cfg: RunConfig) -> dict:
    tracemalloc.reset_peak()
    t0 = time.perf_counter()
    data = prepare_data(cfg)
    seconds = time.perf_counter() - t0
    split = sum(a.nbytes for a in (data.x_train, data.x_val, data.x_test))
    return {
        "seconds": seconds,
        "peak_heap_mb": tracemalloc.get_traced_memory()[1] / 2**20,
        "split_mb": split / 2**20,
        "rows": [len(data.x_train), len(data.x_val), len(data.x_test)],
        "held_as": type(data.x_train).__name__,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="magnetic_tile")
    p.add_argument("--size", type=int, default=256, help="photographs' side in pixels")
    p.add_argument("--out", default="results/benchmarks/bench_data_store.json")
    a = p.parse_args()
    data = DataConfig(a.dataset, image_size=a.size)
    tracemalloc.start()
    with tempfile.TemporaryDirectory() as folder:
        runs = {"in_memory": measured(RunConfig(detector="defects", data=data, progress=False))}
        streamed = RunConfig(
            detector="defects", data=data, train=TrainConfig(stream_rows=4096), out=folder, progress=False
        )
        runs["streamed_first"] = measured(streamed)
        runs["streamed_again"] = measured(streamed)
    for name, r in runs.items():
        print(
            f"{name}: {r['seconds']:.1f} s, heap peak {r['peak_heap_mb']:.0f} MB for a split of "
            f"{r['split_mb']:.0f} MB float32 ({r['held_as']})"
        )
    report = {"benchmark": "data_store", "versions": versions(), "settings": vars(a), "runs": runs}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
