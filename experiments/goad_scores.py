"""GOAD's scores side by side on the ``adbench`` suite's sets: one fit per set and seed (the
estimator's defaults, as the suite runs it), every score of the fitted model
(``centres``: GOAD's; ``distance``, ``ce``, ``dirichlet``: ``detectors.geom``), AUROC each.

    python experiments/goad_scores.py [--every 3] [--seeds 0]

Writes ``results/suites/adbench_goad_scores.json`` and prints the means (the suite's own table
holds the default score only).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from jax_anomaly.config import parse_int_list
from jax_anomaly.detectors.geom import SCORES
from jax_anomaly.environment import versions
from jax_anomaly.estimators import estimator_for
from jax_anomaly.metrics import ranking_metrics
from jax_anomaly.suites import adbench


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--every", type=int, default=1, help="every k-th set")
    p.add_argument("--seeds", default="0")
    p.add_argument("--data-dir")
    p.add_argument("--out", default="results/suites/adbench_goad_scores.json")
    a = p.parse_args(argv)
    options = dict(adbench.OPTIONS, data_dir=a.data_dir)
    rows = []
    for name in adbench.sets(options)[:: a.every]:
        for seed in parse_int_list(a.seeds, "--seeds"):
            part = adbench.split(name, seed, options)
            t0 = time.perf_counter()
            parts = estimator_for("goad", seed=seed).fit(part.x_train).score_details(part.x_test)
            row = {"set": name, "seed": seed, "seconds": time.perf_counter() - t0}
            row |= {s: 100 * ranking_metrics(part.y_test, np.asarray(parts[s]))["auroc"] for s in SCORES}
            rows.append(row)
            print(json.dumps(row), flush=True)
    means = {s: float(np.mean([r[s] for r in rows])) for s in SCORES}
    report = {"experiment": "goad_scores", "options": options, "versions": versions()}
    report |= {"means": means, "rows": rows}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1, default=str) + "\n")
    print("mean AUROC: " + ", ".join(f"{s} {v:.1f}" for s, v in means.items()))
    return report


if __name__ == "__main__":
    main()
