"""Train states, step helpers and the on-device (``lax.scan``) epoch loop."""

from jax_anomaly.training.loop import (
    FitResult,
    TrainingDivergedError,
    auto_epochs,
    epoch_batches,
    fit_loop,
    make_epoch_fn,
    masked_mean,
    steps_per_epoch,
)
from jax_anomaly.training.progress import Progress

__all__ = [
    "FitResult",
    "Progress",
    "TrainingDivergedError",
    "auto_epochs",
    "epoch_batches",
    "fit_loop",
    "make_epoch_fn",
    "masked_mean",
    "steps_per_epoch",
]
