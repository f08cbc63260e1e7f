"""The default tabular detector (``AnomalyDetector()``): fit and score times on 10,000,
100,000 and 1,000,000 rows of 100 features, compile time apart where measured.

    python experiments/bench_tabular.py [--rows 10000,1000000] [--out results/benchmarks/bench_tabular.json]

Same as `jax-anomaly bench tabular`.
"""

import sys

from jax_anomaly.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "tabular", *sys.argv[1:]]))
