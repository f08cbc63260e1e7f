"""The one-class protocol: pick normal classes, hold out validation normals, scale."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from sklearn.preprocessing import MinMaxScaler

from jax_anomaly.data.sources import Dataset
from jax_anomaly.persistence import new_npy

# Published mean AUROC (%) of the one-class protocol (one class normal, test on all), shown
# beside this library's tables.
PUBLISHED_MEAN_AUROC = {
    "mnist": {"Deep SVDD (Ruff et al. 2018)": 94.8, "OCGAN (Perera et al. 2019)": 97.5},
    "fashion_mnist": {"GEOM (Golan & El-Yaniv 2018)": 93.5, "GOAD (Bergman & Hoshen 2020)": 94.1},
    "digits": {},
}


@dataclasses.dataclass(frozen=True)
class OneClassData:
    """Arrays for one-class training and evaluation, all float32 ``(N, D)``.

    Attributes:
      x_train: normal training samples only (what the detector is fitted on).
      x_val: held-out normal training samples (threshold selection, early stopping).
      x_test: the whole test split, every class.
      y_test: 1 where the test sample is an anomaly (not a normal class), else 0.
      test_classes: the original class label of each test sample.
      normal: the classes treated as normal.
      image_shape: ``(H, W)`` for images, None for tabular data.
      scaler: the scikit-learn scaler fitted on ``x_train`` (tabular data), else None.
      test_rows: each test sample's row in the source (0-based data row of a file or array;
        for data sets with their own test file, its position there).
      share: ``(index, count)``: ``x_train`` and ``x_test`` hold only process ``index``'s
        ``row_share`` of the training and test rows (a multi-process run); the labels,
        ``x_val`` and ``test_rows`` are whole. None: every array is whole.
      n_train: the number of training rows (all processes' shares together).
      test_masks, test_kinds: photographs: each test image's defect mask and kind
        (``Dataset``'s, whole); None for other data.
    """

    name: str
    x_train: np.ndarray
    x_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    test_classes: np.ndarray
    normal: tuple[int, ...]
    image_shape: tuple[int, ...] | None = None
    scaler: object | None = None
    test_rows: np.ndarray | None = None
    share: tuple[int, int] | None = None
    n_train: int = -1
    test_masks: np.ndarray | None = None
    test_kinds: np.ndarray | None = None

    def __post_init__(self):
        if self.n_train < 0:
            object.__setattr__(self, "n_train", len(self.x_train))

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]


def row_share(n: int, index: int, count: int) -> slice:
    """The rows of ``n`` that part ``index`` of ``count`` holds: a contiguous range of
    ``ceil(n / count)`` rows (the last ones shorter, possibly empty). The one rule of who holds
    what in a multi-process run (``sharding.process_share`` applies it to this process)."""
    if not 0 <= index < count:
        raise ValueError(f"share index must be in [0, {count}), got {index}")
    size = -(-n // count)
    return slice(min(index * size, n), min((index + 1) * size, n))


def _rows(x, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` of ``x`` (an array, or ``IdxRows`` read now) as ``(len(idx), D)``."""
    rows = np.asarray(x[idx])
    return rows.reshape(len(rows), int(np.prod(rows.shape[1:])))


# Rows are read, scaled and written into a store this many bytes (of float32) at a time.
STORE_BYTES = 1 << 26


def _written(path: Path, x, rows: np.ndarray, transform) -> np.ndarray:
    """``transform(rows`` of ``x)`` written into the ``.npy`` file ``path`` a part at a time
    and opened as a read-only memory map (an empty split: an empty array in memory)."""
    width = int(np.prod(x.shape[1:], dtype=np.int64))
    if not len(rows):
        return np.zeros((0, width), np.float32)
    step = max(1, STORE_BYTES // (4 * max(1, width)))
    with new_npy(path, np.float32, (len(rows), width)) as out:
        for start in range(0, len(rows), step):
            out[start : start + step] = transform(_rows(x, rows[start : start + step]))
    return np.load(path, mmap_mode="r")


def parse_normal(spec: str | int | tuple | list | None) -> tuple[int, ...] | None:
    """``'0'`` / ``'0,1,2'`` / ``0`` / ``(0, 1)`` -> a sorted tuple of ints (None stays None)."""
    if spec is None:
        return None
    if isinstance(spec, str):
        try:
            values = [int(s) for s in spec.split(",") if s.strip()]
        except ValueError:
            raise ValueError(f"normal classes must be integers like '0' or '0,1,2'; got '{spec}'") from None
    elif isinstance(spec, int | np.integer):
        values = [int(spec)]
    else:
        values = [int(s) for s in spec]
    if not values:
        raise ValueError("at least one normal class is needed")
    return tuple(sorted(set(values)))


def one_class_split(
    ds: Dataset,
    normal: tuple[int, ...] | None = None,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    share: tuple[int, int] | None = None,
    store: str | Path | None = None,
) -> OneClassData:
    """Applies the one-class protocol to a labelled data set.

    Training uses only normal training samples; a seeded ``val_fraction`` of them is held
    out for validation; the test split is kept whole with label 1 for every sample not in
    a normal class. Images are scaled to [0, 1]; tabular data is MinMax-scaled with a
    scaler fitted on the normal training part only.

    Args:
      ds: the labelled data set.
      normal: normal classes; default ``(0,)``.
      val_fraction: fraction of normal training samples held out, in [0, 1).
      seed: seed of the validation hold-out.
      share: ``(index, count)``: keep only part ``index``'s ``row_share`` of the training
        rows (in their shuffled order) and of the test rows; the images of a lazily loaded
        data set are then read for those rows only. The split itself is the same.
      store: write ``x_train``, ``x_val`` and ``x_test`` into this folder (``train.npy``,
        ``val.npy``, ``test.npy``), a part at a time, and return them as read-only memory maps
        (a set larger than memory: ``TrainConfig.stream_rows`` trains from them). None: arrays
        in memory.

    Raises:
      ValueError: a normal class absent from the training data, a bad fraction, too few
        samples, or non-finite values.
    """
    normal = parse_normal(normal) or (0,)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    present = set(np.unique(ds.y_train).tolist())
    absent = [c for c in normal if c not in present]
    if absent:
        raise ValueError(
            f"normal class(es) {absent} not in the training labels of '{ds.name}' "
            f"(labels present: {sorted(present)})"
        )
    for split, x in (("train", ds.x_train), ("test", ds.x_test)):
        if not (ds.is_image and np.issubdtype(x.dtype, np.integer)):  # integer pixels are finite
            if not np.all(np.isfinite(np.asarray(x, dtype=np.float64))):
                raise ValueError(f"'{ds.name}' {split} data contains NaN or inf values")
    normal_rows = np.flatnonzero(np.isin(ds.y_train, normal))
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(normal_rows))
    n_val = int(round(val_fraction * len(normal_rows)))
    if len(normal_rows) - n_val < 2:
        raise ValueError(
            f"only {len(normal_rows)} normal training samples in '{ds.name}'; need at least 2 after "
            f"holding out {n_val} for validation"
        )
    val_rows, train_rows = normal_rows[perm[:n_val]], normal_rows[perm[n_val:]]
    test_rows = np.arange(len(ds.y_test))
    mine_train, mine_test = (
        (slice(None), slice(None))
        if share is None
        else (row_share(len(a), *share) for a in (train_rows, test_rows))
    )
    parts = {
        "val": (ds.x_train, val_rows),
        "train": (ds.x_train, train_rows[mine_train]),
        "test": (ds.x_test, test_rows[mine_test]),
    }
    read = {name: _rows(x, r) for name, (x, r) in parts.items()} if store is None else None
    scaler = None
    if ds.is_image:
        scale = np.float32(1.0 / ds.value_max)

        def transform(a):
            return a.astype(np.float32) * scale

    else:  # fitted on every training row, whatever this process keeps (read once where held)
        whole = read["train"] if read is not None and share is None else _rows(ds.x_train, train_rows)
        scaler = MinMaxScaler().fit(whole)

        def transform(a):
            return scaler.transform(a).astype(np.float32) if len(a) else a.astype(np.float32)

    if read is not None:
        x_val, x_train, x_test = (transform(a) for a in read.values())
    else:
        Path(store).mkdir(parents=True, exist_ok=True)
        x_val, x_train, x_test = (
            _written(Path(store) / f"{name}.npy", x, r, transform) for name, (x, r) in parts.items()
        )
    return OneClassData(
        name=ds.name,
        x_train=x_train,
        x_val=x_val,
        x_test=x_test,
        y_test=(~np.isin(ds.y_test, normal)).astype(np.int64),
        test_classes=np.asarray(ds.y_test),
        normal=normal,
        image_shape=ds.image_shape,
        scaler=scaler,
        test_rows=np.arange(len(ds.x_test)) if ds.test_rows is None else np.asarray(ds.test_rows),
        share=share,
        n_train=len(train_rows),
        test_masks=ds.test_masks,
        test_kinds=ds.test_kinds,
    )
