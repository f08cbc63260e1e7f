"""Training and scoring throughput of the dense autoencoder on Fashion-MNIST class 0.

    python experiments/bench_ae.py [--epochs 20] [--batch-size 128] [--unroll 1] [--out results/bench_ae.json]

The issue's setup: 6000 class-0 training images, 784-128-64-12-3 mirrored, batch 128,
20 epochs. Prints samples/s over epochs 2..N (epoch 1 and compile time apart), achieved
GFLOP/s from the layer sizes and its ratio to a jnp.dot fp32 peak measured in the same
process; writes JSON. About 30 s on 2 CPU cores (same as `jax-anomaly bench ae`).
"""

import sys

from jax_anomaly.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "ae", *sys.argv[1:]]))
