"""Training throughput of any registered detector on any data set, and where a step's time
goes (its matrix products alone against the whole step)."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from jax_anomaly.benchmarks import measure, report
from jax_anomaly.config import DataConfig, TrainConfig
from jax_anomaly.detectors import get_detector
from jax_anomaly.runner import RunConfig, prepare_data


def load_normal(dataset: str, normal, data_dir=None, seed: int = 0):
    """The one-class split of ``dataset`` with classes ``normal`` normal (``runner.prepare_data``)."""
    return prepare_data(RunConfig(data=DataConfig(dataset, tuple(normal), data_dir=data_dir), seed=seed))


@dataclasses.dataclass(frozen=True)
class Target:
    """What a per-detector benchmark measures: a registered detector (its preset for the data
    set, or ``preset``, with ``model`` overrides) on a data set's one-class split."""

    detector: str = "ae"
    dataset: str = "fashion_mnist"
    normal: tuple[int, ...] = (0,)
    preset: str | None = None
    model: dict | None = None
    data_dir: str | None = None

    def setup(self, benchmark: str, train: TrainConfig, **settings):
        """``(detector, config, data, report)``: the config, the one-class data, and a report
        head recording every setting."""
        det = get_detector(self.detector)
        cfg = det.config(self.preset, self.dataset, **(self.model or {}))
        data = load_normal(self.dataset, self.normal, self.data_dir)
        head = {**dataclasses.asdict(self), "train": dataclasses.asdict(train), "n_train": len(data.x_train)}
        return (
            det,
            cfg,
            data,
            report.new_report(benchmark, {**head, "n_features": data.n_features, **settings}),
        )


def bench_train(target: Target, train: TrainConfig | None = None, *, out=None) -> dict:
    """Trains ``detector`` (its preset for ``dataset``, or ``preset``) under ``train`` on the
    normal training part and reports, per training phase: samples/s over epochs 2..N (the
    median epoch; epoch 1 and compile apart), FLOPs per sample counted from the step's
    products, GFLOP/s and fraction of the run's peak, and the products-only ceiling."""
    train = train or TrainConfig()
    det, cfg, data, rep = target.setup("train", train)
    x = det.to_input(data.x_train)
    fitted = det.fit(cfg, train, x, None, key=jax.random.key(0), progress=True)  # a line per epoch at most
    state = det.phase_states(fitted.state)
    history = fitted.result.history
    batch = min(train.batch_size, len(x))
    for phase in det.phases:
        if phase.name not in state:  # a gradient-free pass whose state is not kept (keep_state)
            continue
        epochs = [h for h in history if h.get("phase", phase.name) == phase.name]
        seconds = [h["seconds"] if "seconds" in h else h[f"{phase.name}_seconds"] for h in epochs]
        steady = seconds[1:] or seconds
        step = phase.make_step(cfg, train, x.shape[1])
        breakdown = measure.step_breakdown(
            step, state[phase.name], x[:batch], len(x), min(steady), rep["peak"]["before"]
        )
        rep["measurements"].append(
            report.measurement(
                f"train {det.name} ({phase.name})",
                samples=len(x),
                seconds=float(np.median(steady)),
                flops_per_sample=breakdown["step_flops_per_sample"],
                compile_seconds=fitted.result.compile_seconds if len(det.phases) == 1 else None,
                details={
                    "first_epoch_seconds": seconds[0],
                    "epoch_seconds": measure.summarize(steady),
                    **breakdown,
                },
            )
        )
    return report.finish(rep, out)
