"""Frozen, validated configuration dataclasses shared by every detector and the runner."""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import inspect
from typing import Any

import jax


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings common to all detectors (optax Adam).

    Attributes:
      epochs: passes over the training data (None: enough epochs for at least 2,000 optimiser
        steps and at least 20 epochs, so small data sets train to convergence too).
      batch_size: samples per step (clamped to the training set size).
      learning_rate: Adam step size.
      b1: Adam beta1 (None: the detector's own default, 0.9 for autoencoders, 0.5 for GANs,
        whose MLP discriminator otherwise overpowers the generator).
      b2: Adam beta2.
      patience: early stopping: stop after this many epochs without a better validation
        loss and keep the best state (None: train every epoch).
      drop_remainder: drop the last partial batch of each epoch instead of masking it.
      unroll: lax.scan unroll factor of the epoch loop.
      devices: train data-parallel over the first N devices (None: all visible; one on a
        single-host CPU, whose devices share its cores).
      checkpoint: file written every checkpoint_every epochs, atomically (the runner puts it
        in the run folder).
      checkpoint_every: write the run folder's checkpoint every N epochs (atomically; the
        last one survives a crash).
      resume: continue from the checkpoint (same flags and seed): ends with the same
        parameters as an uninterrupted run.
      stream_rows: keep the training data on the host (an array, or a memory-mapped ``.npy``
        file: ``np.load(path, mmap_mode="r")``) and send each epoch's batches to the device
        this many rows at a time (rounded down to whole batches), for sets larger than the
        device's memory; the same steps, keys and result as with the data on the device
        (None). One device and one process. A run (``jax-anomaly run``) then also keeps its
        data on disk, in the run folder's ``data/`` (``runner.prepare_data``).
    """

    epochs: int | None = None
    batch_size: int = 128
    learning_rate: float = dataclasses.field(default=1e-3, metadata={"aliases": ("--lr",)})
    b1: float | None = None
    b2: float = 0.999
    patience: int | None = None
    drop_remainder: bool = False
    unroll: int = 1
    devices: int | None = None
    checkpoint: str | None = dataclasses.field(default=None, metadata={"cli": False})
    checkpoint_every: int | None = None
    resume: bool = False
    stream_rows: int | None = None

    def __post_init__(self):
        _check(self.epochs is None or self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
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
        _check(
            self.stream_rows is None or self.stream_rows >= 1,
            f"stream_rows must be >= 1, got {self.stream_rows}",
        )


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which data, which classes are normal, and how it is split.

    Attributes:
      dataset: mnist, fashion_mnist, digits, synthetic, npz:PATH, csv:PATH, adbench:NAME, magnetic_tile or
        folder:PATH (images: a folder of normal images "good", one folder per defect kind); or a time series:
        ucr_internal_bleeding16, ecg_diff_count_3[_unsupervised], ts_synthetic[_point,
        _contextual, _collective], ucr:ID (UCR anomaly archive), ts:PATH[@N] or ts:TRAIN,TEST.
      normal: normal class(es), e.g. 0 or 0,1,2,3,4.
      val_fraction: share of the normal training data held out (seeded) for the threshold
        and early stopping.
      test_fraction: test split of data sets that have none.
      data_dir: data root searched first (then $JAX_ANOMALY_DATA, ../shared/data,
        /usr/share/datasets).
      source: read IDX files (local) or tensorflow-datasets (tfds: needs TensorFlow and the
        internet).
      label_column: label column of csv:PATH data (1 = anomaly).
      synthetic: options of the synthetic generator (sizes, shift; for ts_synthetic: n_train,
        n_test, period, noise, n_anomalies).
      window: window length of a time series (auto: its dominant period by autocorrelation).
      stride: step between the training windows of a time series (scoring uses every window).
      point_rule: how window scores become point scores: mean or max of the covering windows.
      image_size: side in pixels that photographs (magnetic_tile, folder:PATH) are resized to
        (None: the detector's choice, its config's resize_to, where it has one; else 64).
      rgb: photographs in colour (rows of side x side x 3 values) instead of grey.
    """

    dataset: str = "digits"
    normal: tuple[int, ...] = (0,)
    val_fraction: float = 0.1
    test_fraction: float = 0.3
    data_dir: str | None = None
    source: str = dataclasses.field(default="local", metadata={"choices": ("local", "tfds")})
    label_column: str = "label"
    synthetic: dict[str, Any] = dataclasses.field(default_factory=dict)
    window: int | str | None = "auto"
    stride: int = 1
    point_rule: str = dataclasses.field(default="mean", metadata={"choices": ("mean", "max")})
    image_size: int | None = None
    rgb: bool = False

    def __post_init__(self):
        if self.window in (None, "auto"):
            object.__setattr__(self, "window", None)
        else:
            _check(
                str(self.window).isdigit() and int(self.window) >= 2,
                f"window must be auto or an integer >= 2, got '{self.window}'",
            )
            object.__setattr__(self, "window", int(self.window))
        _check(self.stride >= 1, f"stride must be >= 1, got {self.stride}")
        _check(
            self.image_size is None or self.image_size >= 8,
            f"image_size must be >= 8 pixels, got {self.image_size}",
        )
        _check(self.point_rule in ("mean", "max"), f"point_rule must be mean or max, got '{self.point_rule}'")
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


def parse_override(text: str) -> tuple[str, object]:
    """``'KEY=VALUE'`` -> ``(key, value)``: the value a Python literal (``latent=16``,
    ``hidden=(512, 256)``) or else the bare word (``loss=bce``), for ``replace``.

    Raises:
      ValueError: no ``=`` or no key.
    """
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--model takes KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def parse_int_list(text: str, what: str = "values") -> list[int]:
    """``'0-4'`` (a range, both ends included) or ``'0,2,5'`` -> a list of integers (seeds,
    classes), for the suite CLI and the experiments.

    Raises:
      ValueError: anything else.
    """
    try:
        if "-" in text:
            lo, hi = (int(v) for v in text.split("-"))
            return list(range(lo, hi + 1))
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} must be like 0-4 or 0,2,5; got '{text}'") from None


def to_dict(cfg) -> dict:
    """A JSON-ready dict of a config dataclass (values with a string form, such as a
    threshold spec, as that string)."""
    return dataclasses.asdict(cfg, dict_factory=lambda items: {k: _plain(v) for k, v in items})


def _plain(value):
    if dataclasses.is_dataclass(value) or isinstance(value, str | int | float | bool | type(None)):
        return value
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return value
    return str(value)


def field_docs(cls) -> dict[str, str]:
    """The ``Attributes:`` section of a config class's docstring as ``{field: text}`` (a
    line ``a, b: text`` documents both), for ``--help`` and the estimators' docs."""

    docs, current, inside = {}, None, False
    for cls_ in reversed(cls.__mro__):  # a subclass's text overrides its base's
        inside, current = False, None
        for line in inspect.cleandoc(cls_.__dict__.get("__doc__") or "").splitlines():
            if line.strip() == "Attributes:":
                inside = True
                continue
            if not inside:
                continue
            if not line.strip() or not line.startswith(" "):
                inside = line.startswith(" ") and inside
                if not line.strip():
                    continue
                break
            head, sep, text = line.strip().partition(": ")
            names = [n.strip() for n in head.split(",")]
            if (
                sep
                and line.startswith("  ")
                and not line.startswith("   ")
                and all(n.isidentifier() for n in names)
            ):
                current = names
                for n in names:
                    docs[n] = text.strip()
            elif current:
                for n in current:
                    docs[n] += " " + line.strip()
    return docs
