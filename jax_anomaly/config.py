"""Frozen, validated configuration dataclasses shared by every detector and the runner."""

from __future__ import annotations

import dataclasses
from typing import Any


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings common to all detectors (optax Adam).

    ``b1=None`` takes the detector's own default (0.9 for autoencoders, 0.5 for GANs, whose
    MLP discriminator otherwise overpowers the generator and training collapses).
    ``devices``: train data-parallel over the first N devices (None: all visible; one on a
    single-host CPU, whose devices share its cores).
    ``checkpoint``: file written every ``checkpoint_every`` epochs (default 1; atomically);
    ``resume`` continues from it. The runner sets the file inside the run folder.
    """

    epochs: int = 20
    batch_size: int = 128
    learning_rate: float = 1e-3
    b1: float | None = None
    b2: float = 0.999
    patience: int | None = None
    drop_remainder: bool = False
    unroll: int = 1
    devices: int | None = None
    checkpoint: str | None = None
    checkpoint_every: int | None = None
    resume: bool = False

    def __post_init__(self):
        _check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _check(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        _check(
            (self.b1 is None or 0 <= self.b1 < 1) and 0 <= self.b2 < 1,
            f"Adam betas must be in [0, 1): {self.b1}, {self.b2}",
        )
        _check(self.patience is None or self.patience >= 1, f"patience must be >= 1, got {self.patience}")
        _check(self.unroll >= 1, f"unroll must be >= 1, got {self.unroll}")
        _check(self.devices is None or self.devices >= 1, f"devices must be >= 1, got {self.devices}")
        _check(
            self.checkpoint_every is None or self.checkpoint_every >= 1,
            f"checkpoint_every must be >= 1, got {self.checkpoint_every}",
        )


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which data, which classes are normal, and how it is split."""

    dataset: str = "digits"
    normal: tuple[int, ...] = (0,)
    val_fraction: float = 0.1
    test_fraction: float = 0.3
    data_dir: str | None = None
    source: str = "local"
    label_column: str = "label"
    synthetic: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        _check(0 <= self.val_fraction < 1, f"val_fraction must be in [0, 1), got {self.val_fraction}")
        _check(0 < self.test_fraction < 1, f"test_fraction must be in (0, 1), got {self.test_fraction}")
        _check(self.source in ("local", "tfds"), f"source must be 'local' or 'tfds', got '{self.source}'")


# User-facing matmul precisions -> JAX's names. The backend default (None) is full float32
# on CPU but TF32 on recent NVIDIA GPUs; 'bf16' asks for bfloat16 operands with float32
# accumulation (JAX's own 'bfloat16' level maps to TF32 on GPUs).
MATMUL_PRECISIONS = {"float32": "float32", "tf32": "tensorfloat32", "bf16": "BF16_BF16_F32"}


def matmul_precision(name: str | None):
    """Context manager setting the matmul precision for fp32 inputs (``None``: the backend's
    default); traced and compiled functions inside it use it (it is part of jit's cache key)."""
    import contextlib

    import jax

    if name is None:
        return contextlib.nullcontext()
    if name not in MATMUL_PRECISIONS:
        raise ValueError(f"unknown matmul precision '{name}'; expected one of {sorted(MATMUL_PRECISIONS)}")
    return jax.default_matmul_precision(MATMUL_PRECISIONS[name])


def replace(cfg, **overrides):
    """``dataclasses.replace`` that ignores None overrides and names unknown fields clearly."""
    names = {f.name for f in dataclasses.fields(cfg)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"{type(cfg).__name__} has no option(s) {unknown}; options: {sorted(names)}")
    return dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def to_dict(cfg) -> dict:
    """A JSON-ready dict of a config dataclass."""
    return dataclasses.asdict(cfg)
