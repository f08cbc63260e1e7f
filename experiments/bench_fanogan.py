"""f-AnoGAN's encoder against AnoGAN's latent search, on one GAN trained on MNIST digit 0.

    python experiments/bench_fanogan.py [--epochs 30] [--out results/benchmarks/bench_fanogan.json]

Trains f-AnoGAN (the tutorial MLP GAN, then the izi_f encoder), then times scoring with the
encoder (one forward pass per sample) and with AnoGAN's search (`mnist_fast`: 25 steps,
best of 16 z0; `mnist_tutorial`: 500 steps) on the first 2,000 test images, compile time
apart, and reports AUROC and seconds per 10k test samples for each. About 6-8 minutes on 2
CPU cores, most of it the 500-step search (= `jax-anomaly bench fanogan`).
"""

import sys

from jax_anomaly.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "fanogan", *sys.argv[1:]]))
