"""AnoGAN scoring throughput on MNIST: the vmapped latent search over 1,000 and 10,000 test
images x 500 iterations.

    python experiments/bench_anogan.py [--sizes 1000,10000] [--out results/benchmarks/bench_score_anogan.json]

Trains the tutorial GAN one epoch (throughput does not depend on how well), then times the
compiled whole-set search (after a warm-up call; compile apart): samples/s, FLOPs per
sample counted from the search's jaxpr (500 steps of G and D forward and the backward pass
to z), GFLOP/s against the run's best jnp.dot peak and against the peak measured right
around each call, and AUROC. About 8 minutes on 2 CPU cores. The AUROC/length trade-off
and precisions: `jax-anomaly bench search`; GAN training: `jax-anomaly bench train
--detector anogan --dataset mnist`.
"""

import sys

from jax_anomaly.cli import main

if __name__ == "__main__":
    argv = ["bench", "score", "--detector", "anogan", "--dataset", "mnist", "--search-steps", "500"]
    sys.exit(
        main(
            [
                *argv,
                "--sizes",
                "1000,10000",
                "--out",
                "results/benchmarks/bench_score_anogan.json",
                *sys.argv[1:],
            ]
        )
    )
