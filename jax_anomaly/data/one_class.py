"""The one-class protocol: pick normal classes, hold out validation normals, scale."""

from __future__ import annotations

import dataclasses

import numpy as np
from sklearn.preprocessing import MinMaxScaler

from jax_anomaly.data.sources import Dataset

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

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]


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
    ds: Dataset, normal: tuple[int, ...] | None = None, *, val_fraction: float = 0.1, seed: int = 0
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
        if not np.all(np.isfinite(np.asarray(x, dtype=np.float64))):
            raise ValueError(f"'{ds.name}' {split} data contains NaN or inf values")
    normal_x = ds.x_train[np.isin(ds.y_train, normal)]
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(normal_x))
    n_val = int(round(val_fraction * len(normal_x)))
    if len(normal_x) - n_val < 2:
        raise ValueError(
            f"only {len(normal_x)} normal training samples in '{ds.name}'; need at least 2 after "
            f"holding out {n_val} for validation"
        )
    x_val, x_train = normal_x[perm[:n_val]], normal_x[perm[n_val:]]
    x_test = ds.x_test
    scaler = None
    if ds.is_image:
        scale = np.float32(1.0 / ds.value_max)
        x_train, x_val, x_test = (a.astype(np.float32) * scale for a in (x_train, x_val, x_test))
    else:
        scaler = MinMaxScaler().fit(x_train)
        x_train, x_val, x_test = (
            scaler.transform(a).astype(np.float32) if len(a) else a.astype(np.float32)
            for a in (x_train, x_val, x_test)
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
    )
