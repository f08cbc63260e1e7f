"""Fashion-MNIST, classes 0-4 normal, dense autoencoder 784-128-32 (the classic lab's model).

    python experiments/fashion_mnist_ae.py [--out runs/fashion_mnist_ae] [--seed 0]

10 epochs, batch 256; needs `apt-get install -y dataset-fashion-mnist` (or the IDX files
under a data root). About 30 s on 2 CPU cores. Expected:
AUROC 0.917, AUPRC 0.940, F1 0.87 at the default threshold with the preset's mean3 score
(0.910 with the pixel loss: docs/results.md).
"""

from jax_anomaly import DataConfig, RunConfig, TrainConfig
from jax_anomaly.runner import main_for

if __name__ == "__main__":
    main_for(
        RunConfig(
            preset="fashion_lab",
            data=DataConfig(dataset="fashion_mnist", normal=(0, 1, 2, 3, 4)),
            train=TrainConfig(epochs=10, batch_size=256),
            threshold="percentile:95",
            compare_thresholds=("test_percentile:95",),
            out="runs/fashion_mnist_ae",
        )
    )
