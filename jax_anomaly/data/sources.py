"""Loaders that turn a data set name into NumPy arrays: IDX files, scikit-learn digits,
synthetic Gaussians, tabular npz/csv files and (optionally) tensorflow-datasets."""

from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from jax_anomaly.data.idx import IdxRows, read_idx
from jax_anomaly.data.roots import DATA_ENV_VAR, data_roots

# Folder names a data set may live under inside a data root.
_IDX_FOLDERS = {"mnist": ("mnist",), "fashion_mnist": ("fashion-mnist", "fashion_mnist")}
_IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_HOW_TO_GET = {
    "mnist": "put the four original MNIST IDX .gz files in <root>/mnist/",
    "fashion_mnist": (
        "on Debian/Ubuntu run `apt-get install -y dataset-fashion-mnist` "
        "(installs /usr/share/datasets/fashion-mnist/), or put the four IDX .gz files "
        "in <root>/fashion-mnist/"
    ),
}
IMAGE_DATASETS = ("mnist", "fashion_mnist", "digits")
BUILTIN_DATASETS = ("mnist", "fashion_mnist", "digits", "synthetic")


def is_photographs(dataset: str) -> bool:
    """Whether ``dataset`` names photographs read from image files (``magnetic_tile``,
    ``folder:PATH``): resized to a side of the detector's choosing, with defect masks."""
    return dataset == "magnetic_tile" or dataset.startswith("folder:")


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A labelled data set with a train/test split, before any one-class selection.

    Images are kept as raw values (``value_max`` says the pixel range); tabular data as
    float arrays. ``x_*`` are ``(N, D)`` with ``D = prod(image_shape)`` for images, or, loaded
    with ``lazy=True``, ``IdxRows`` of the files (``(N, H, W)``, rows read when indexed), or,
    photographs loaded with a ``store``, ``RowsOf`` views of its memory map.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, ...] | None = None
    value_max: float | None = None
    # Row of each test sample in the source (0-based data row of a CSV/npz file or array;
    # None: the test split is the source's own test file, in its order).
    test_rows: np.ndarray | None = None
    # Photographs: each test image's defect mask (N, H, W) bool (or a ``RowsOf`` view of the
    # store's, rows of H * W) and its kind (the folder's name); None for other data.
    test_masks: np.ndarray | None = None
    test_kinds: np.ndarray | None = None

    @property
    def is_image(self) -> bool:
        return self.image_shape is not None


def host_rows(a, rows: np.ndarray) -> np.ndarray:
    """``a[rows]`` for a host array or a memory map, read in file order (each row once)."""
    unique, inverse = np.unique(rows, return_inverse=True)
    return np.asarray(a[unique])[inverse]


class RowsOf:
    """Rows ``rows`` of ``base`` (N, ...; an array or a memory map) as ``(len(rows), D)``, read
    only when indexed (in file order): a split of a memory-mapped set that holds none of it."""

    def __init__(self, base, rows):
        self.base, self.rows = base, np.asarray(rows, np.int64)
        self.dtype = base.dtype
        self.shape = (len(self.rows), int(np.prod(base.shape[1:], dtype=np.int64)))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx) -> np.ndarray:
        return host_rows(self.base, np.atleast_1d(self.rows[idx])).reshape(-1, self.shape[1])


def _find_idx_folder(name: str, data_dir) -> Path:
    tried = []
    for root in data_roots(data_dir):
        for folder in _IDX_FOLDERS[name]:
            candidate = root / folder
            tried.append(str(candidate))
            if all(
                (candidate / f"{stem}.gz").is_file() or (candidate / stem).is_file()
                for stem in _IDX_FILES.values()
            ):
                return candidate
    raise FileNotFoundError(
        f"data set '{name}' not found; looked for its four IDX files in: "
        + ", ".join(tried)
        + f". To get it: {_HOW_TO_GET[name]} (set --data-dir or ${DATA_ENV_VAR} for another root)."
    )


def load_idx_dataset(name: str, data_dir: str | None = None, lazy: bool = False) -> Dataset:
    """Loads MNIST or Fashion-MNIST from the original IDX files in the first data root that
    has them. ``lazy``: the labels are read, the images only when rows are taken
    (``IdxRows``: a process reading its share of a multi-process run)."""
    folder = _find_idx_folder(name, data_dir)
    arrays = {}
    for key, stem in _IDX_FILES.items():
        path = folder / f"{stem}.gz"
        path = path if path.is_file() else folder / stem
        arrays[key] = IdxRows(path) if lazy and key.startswith("x_") else read_idx(path)
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(x.shape) != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"{folder}: {split} images {x.shape} and labels {y.shape} do not match")
    image_shape = arrays["x_train"].shape[1:]

    def flat(x):
        return x if lazy else x.reshape(len(x), -1)

    return Dataset(
        name=name,
        x_train=flat(arrays["x_train"]),
        y_train=arrays["y_train"].astype(np.int64),
        x_test=flat(arrays["x_test"]),
        y_test=arrays["y_test"].astype(np.int64),
        image_shape=tuple(image_shape),
        value_max=255.0,
    )


def load_tfds_dataset(name: str) -> Dataset:
    """Loads MNIST / Fashion-MNIST through tensorflow-datasets (needs TensorFlow and the internet)."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ValueError(
            "--source tfds needs tensorflow-datasets and TensorFlow "
            "(pip install 'jax-anomaly[tfds]'); use --source local to read IDX files"
        ) from e
    out = {}
    for split in ("train", "test"):
        x, y = tfds.as_numpy(tfds.load(name, split=split, batch_size=-1, as_supervised=True))
        out[f"x_{split}"] = x.reshape(len(x), -1)
        out[f"y_{split}"] = y.astype(np.int64)
    return Dataset(name=name, image_shape=(28, 28), value_max=255.0, **out)


def _stratified_split(x, y, test_fraction: float, seed: int) -> dict:
    """Seeded stratified train/test split; ``test_rows`` keeps where each test row came from."""
    rows = np.arange(len(x))
    x_train, x_test, y_train, y_test, _, test_rows = train_test_split(
        x, y, rows, test_size=test_fraction, random_state=seed, stratify=y
    )
    return {
        "x_train": x_train,
        "y_train": y_train,
        "x_test": x_test,
        "y_test": y_test,
        "test_rows": test_rows,
    }


def load_digits_dataset(test_fraction: float, seed: int) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 images, values 0..16), seeded stratified split."""
    d = load_digits()
    parts = _stratified_split(d.data.astype(np.float32), d.target.astype(np.int64), test_fraction, seed)
    return Dataset("digits", **parts, image_shape=(8, 8), value_max=16.0)


def make_synthetic(
    *, n_normal: int = 1000, n_anomalies: int = 50, dim: int = 20, shift: float = 5.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The classic tabular case: ``n_normal`` points N(0, I) and ``n_anomalies`` points
    N(shift, I) in ``dim`` dimensions. Returns ``(x, y)`` with y = 1 for anomalies."""
    if n_normal < 2 or n_anomalies < 0 or dim < 1:
        raise ValueError(
            f"synthetic data needs n_normal >= 2, n_anomalies >= 0, dim >= 1; "
            f"got {n_normal}, {n_anomalies}, {dim}"
        )
    rng = np.random.default_rng(seed)
    x = np.concatenate(
        [rng.normal(0.0, 1.0, (n_normal, dim)), rng.normal(shift, 1.0, (n_anomalies, dim))]
    ).astype(np.float32)
    y = np.concatenate([np.zeros(n_normal), np.ones(n_anomalies)]).astype(np.int64)
    return x, y


def _read_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = {"X", "y"} - set(f.files)
            if missing:
                raise ValueError(f"{path}: npz file needs arrays 'X' and 'y'; missing {sorted(missing)}")
            return np.asarray(f["X"]), np.asarray(f["y"])
    except (OSError, EOFError) as e:
        raise ValueError(f"cannot read npz file {path}: {e}") from e


def _read_csv(path: str, label_column: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: Excel's "CSV UTF-8" BOM
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read csv file {path}: {e}") from e
    lines = [
        (i, row) for i, row in enumerate(rows, start=1) if any(v.strip() for v in row)
    ]  # blank lines out
    if len(lines) < 2:
        raise ValueError(f"{path}: csv file needs a header row and at least one data row")
    rows = [row for _, row in lines]
    header = [h.strip() for h in rows[0]]
    if label_column not in header:
        raise ValueError(f"{path}: label column '{label_column}' not in header {header}")
    li = header.index(label_column)
    values = np.empty((len(rows) - 1, len(header)), dtype=np.float64)
    for i, (line, row) in enumerate(lines[1:]):
        if len(row) != len(header):
            raise ValueError(f"{path}: line {line} has {len(row)} fields, header has {len(header)}")
        for c, v in enumerate(row):
            if not v.strip():
                raise ValueError(f"{path}: missing value (empty field) in column '{header[c]}' (line {line})")
            try:
                values[i, c] = float(v)
            except ValueError:
                raise ValueError(
                    f"{path}: non-numeric value {v!r} in column '{header[c]}' (line {line})"
                ) from None
            if not np.isfinite(values[i, c]):
                raise ValueError(f"{path}: value {v!r} (NaN or inf) in column '{header[c]}' (line {line})")
    return np.delete(values, li, axis=1), values[:, li]


def load_tabular_file(spec: str, *, label_column: str, test_fraction: float, seed: int) -> Dataset:
    """Loads ``npz:PATH`` (arrays X, y) or ``csv:PATH`` (label column named ``label_column``).
    Label 1 marks an anomaly, 0 a normal sample."""
    kind, _, path = spec.partition(":")
    if not path:
        raise ValueError(f"data set spec '{spec}' needs a path, e.g. {kind}:data/my.{kind}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"data file not found: {path}")
    x, y = _read_npz(path) if kind == "npz" else _read_csv(path, label_column)
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"{path}: need X of shape (N, D) and y of shape (N,); got {x.shape}, {y.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{path}: X must be numeric, got dtype {x.dtype}")
    if not np.all(np.isfinite(x)):
        rows, cols = np.nonzero(~np.isfinite(x))
        raise ValueError(
            f"{path}: X contains NaN or inf ({len(rows)} values; first at data row {rows[0]} (0-based), "
            f"column {cols[0]})"
        )
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{path}: labels contain NaN or inf")
    labels = set(np.unique(y).tolist())
    if not labels <= {0, 1}:
        raise ValueError(f"{path}: labels must be 0 (normal) or 1 (anomaly); found {sorted(labels)}")
    parts = _stratified_split(x.astype(np.float32), y.astype(np.int64), test_fraction, seed)
    return Dataset(f"{kind}:{Path(path).name}", **parts)


def load_dataset(
    dataset: str,
    *,
    data_dir: str | None = None,
    source: str = "local",
    seed: int = 0,
    test_fraction: float = 0.3,
    label_column: str = "label",
    synthetic: dict | None = None,
    lazy: bool = False,
    image_size: int | None = None,
    rgb: bool = False,
    store: str | Path | None = None,
    progress: bool = False,
) -> Dataset:
    """Loads a data set by name: ``mnist``, ``fashion_mnist``, ``digits``, ``synthetic``,
    ``npz:PATH``, ``csv:PATH``, ``adbench:NAME``, ``magnetic_tile`` or ``folder:PATH``.
    ``lazy``: IDX images are read only when rows are taken
    (``load_idx_dataset``); the other sources are small and load whole. ``image_size``: the
    side photographs (``magnetic_tile``, ``folder:PATH``) are resized to (None:
    ``images.IMAGE_SIZE``); ``rgb``: photographs in colour, not grey. ``store``: photographs
    are decoded into this folder and read from it as memory maps (``images.load_image_folder``;
    ``progress``: a progress line meanwhile), their splits as ``RowsOf`` views.

    Data sets without their own test split get a seeded stratified split of
    ``test_fraction``.

    Raises:
      ValueError: unknown name or source, or malformed data.
      FileNotFoundError: files missing; the message names the paths tried and how to get them.
    """
    if source not in ("local", "tfds"):
        raise ValueError(f"unknown data source '{source}'; expected 'local' or 'tfds'")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if dataset in _IDX_FOLDERS:
        return load_tfds_dataset(dataset) if source == "tfds" else load_idx_dataset(dataset, data_dir, lazy)
    if source == "tfds":
        raise ValueError(f"--source tfds supports mnist and fashion_mnist, not '{dataset}'")
    if dataset == "digits":
        return load_digits_dataset(test_fraction, seed)
    if dataset == "synthetic":
        x, y = make_synthetic(seed=seed, **(synthetic or {}))
        return Dataset("synthetic", **_stratified_split(x, y, test_fraction, seed))
    if dataset.startswith(("npz:", "csv:")):
        return load_tabular_file(dataset, label_column=label_column, test_fraction=test_fraction, seed=seed)
    if dataset.startswith("adbench:"):
        return load_adbench_dataset(dataset, data_dir, seed)
    if is_photographs(dataset):
        return load_image_dataset(dataset, data_dir, seed, image_size, rgb, store, progress)
    raise ValueError(
        f"unknown data set '{dataset}'; expected one of {', '.join(BUILTIN_DATASETS)}, npz:PATH, csv:PATH, "
        "adbench:NAME, magnetic_tile, folder:PATH"
    )


def load_adbench_dataset(spec: str, data_dir: str | None, seed: int) -> Dataset:
    """``adbench:NAME`` in DTE's semi-supervised protocol (``collections.protocol_split``):
    the training split holds normal rows only, standardised."""
    from jax_anomaly.data.collections import load_adbench, protocol_split

    x, y = load_adbench(spec.partition(":")[2], data_dir)
    split = protocol_split(x, y, protocol="semi", seed=seed)
    return Dataset(
        spec,
        x_train=split.x_train,
        y_train=np.zeros(len(split.x_train), np.int64),
        x_test=split.x_test,
        y_test=split.y_test,
    )


def load_image_dataset(
    spec: str,
    data_dir: str | None,
    seed: int,
    size: int | None = None,
    rgb: bool = False,
    store: str | Path | None = None,
    progress: bool = False,
) -> Dataset:
    """``magnetic_tile`` or ``folder:PATH`` (anomalib's Folder layout, normal folder ``good``)
    as grey (``rgb``: colour) square images of side ``size`` (None: ``images.IMAGE_SIZE``): a seeded
    ``images.TRAIN_FRACTION`` of the normal images train, the rest and every defective image
    test (label 1 = defective). ``store``, ``progress``: as ``load_dataset``."""
    from jax_anomaly.data.images import (
        IMAGE_SIZE,
        TRAIN_FRACTION,
        image_split,
        load_image_folder,
        load_magnetic_tile,
    )

    size = size or IMAGE_SIZE
    options = {"size": size, "grey": not rgb, "store": store, "progress": progress}
    if spec == "magnetic_tile":
        images = load_magnetic_tile(data_dir, **options)
    else:
        images = load_image_folder(spec.partition(":")[2], **options)
    train, test = image_split(images.labels, seed, TRAIN_FRACTION)
    if store is None:
        x = images.images.reshape(len(images), -1)
        x_train, x_test, masks = x[train], x[test], images.masks[test]
    else:
        x_train, x_test = RowsOf(images.images, train), RowsOf(images.images, test)
        masks = RowsOf(images.masks, test)
    return Dataset(
        spec,
        x_train=x_train,
        y_train=images.labels[train],
        x_test=x_test,
        y_test=images.labels[test],
        image_shape=(size, size, 3) if rgb else (size, size),
        value_max=255.0,
        test_rows=test,
        test_masks=masks,
        test_kinds=images.kinds[test],
    )
