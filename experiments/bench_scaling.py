"""Data-parallel throughput on 1, 2, 4, 8 devices: dense AE training and the AnoGAN search.

    python experiments/bench_scaling.py [--cpu-devices 8] [--out results/benchmarks/bench_scaling.json]

On a CPU the devices are virtual (``jax_num_cpu_devices``) and share the same cores: the
run shows that the sharded path is correct (scores equal the 1-device scores) and what
splitting costs, not a speed-up. On a machine with several accelerators the counts are
real devices. Inputs are random (throughput does not depend on values): no data files.
Same as `jax-anomaly bench scaling`.
"""

import sys

from jax_anomaly.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "scaling", *sys.argv[1:]]))
