"""AnoGAN scoring throughput on MNIST, GAN training throughput, and the AUROC/time trade-off.

    python experiments/bench_anogan.py [--run runs/mnist_anogan] [--out results/bench_anogan.json]

After a warm-up call, times the vmapped latent search at N = 1,000 and 10,000 test
samples x 500 iterations: samples/s, s per 10k, compile time, memory, FLOPs per
sample-iteration, GFLOP/s and the ratio to a jnp.dot peak measured in the same run. Then
the trade-off curve (AUROC and s/10k against iterations) for the tutorial's constant step
and for a cosine schedule with best-of-16 initial latents, on 2,000 test images. With
--run the GAN comes from an `experiments/mnist_anogan.py` run folder, else it is trained
here (50 epochs). About 6 minutes on 2 CPU cores (same as `jax-anomaly bench anogan`).
"""

import sys

from jax_anomaly.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "anogan", *sys.argv[1:]]))
