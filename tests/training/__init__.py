"""Tests of the epoch loop; ``fit`` calls it with its settings given as keywords."""

from jax_anomaly.config import TrainConfig
from jax_anomaly.training import fit_loop


def fit(state, step, data, *, key, eval_fn=None, val_data=None, progress=False, **train):
    """``fit_loop`` with the ``TrainConfig`` fields given as keywords."""
    return fit_loop(
        state,
        step,
        data,
        TrainConfig(**train),
        key=key,
        eval_fn=eval_fn,
        val_data=val_data,
        progress=progress,
    )
