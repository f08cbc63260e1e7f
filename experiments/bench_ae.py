"""Training throughput of the dense autoencoder on Fashion-MNIST class 0.

    python experiments/bench_ae.py [--epochs 20] [--batch-size 128] \
        [--out results/benchmarks/bench_train_ae.json]

6000 class-0 training images, 784-128-64-12-3 mirrored (the mnist_tutorial preset), batch
128, 20 epochs: samples/s of the median epoch over epochs 2..N (epoch 1 and compile apart),
FLOPs counted from the step's products, GFLOP/s and the ratio to a jnp.dot peak measured
in the same process, and the products-only ceiling; JSON in the schema of
docs/benchmarks.md. About 30 s on 2 CPU cores (= `jax-anomaly bench train ...` below).
"""

import sys

from jax_anomaly.cli import main

if __name__ == "__main__":
    argv = ["bench", "train", "--detector", "ae", "--dataset", "fashion_mnist", "--preset", "mnist_tutorial"]
    sys.exit(main([*argv, "--out", "results/benchmarks/bench_train_ae.json", *sys.argv[1:]]))
