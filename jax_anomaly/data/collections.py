"""The benchmark collections as NumPy arrays: ADBench's tabular sets (``adbench:NAME``) with
DTE's semi-supervised and unsupervised protocols, and the UCR anomaly archive's series
(``ucr:ID`` or a file name), found in the data roots like every other data set."""

from __future__ import annotations

import dataclasses
import gzip
import re
from pathlib import Path

import numpy as np
from sklearn.preprocessing import StandardScaler

from jax_anomaly.data.roots import find_in_roots

ADBENCH_FOLDER = "adbench"
UCR_FOLDER = "ucr_anomaly"
PROTOCOLS = ("semi", "unsup")
# DTE's data generator: sets above MAX_ROWS are subsampled, sets below MIN_ROWS resampled with
# replacement up to it (DATA.md's protocol; DTE's run.py passes max_size=50000).
MAX_ROWS = 10_000
MIN_ROWS = 1_000
_UCR_NAME = re.compile(r"^(\d+)_UCR_Anomaly_(.+)_(\d+)_(\d+)_(\d+)\.txt(\.gz)?$")
# TSB-AD's CSV files (TSB-AD-U and TSB-AD-M): value columns and a ``Label`` column, the
# training part's end in the name: ``NNN_DATASET_id_K_DOMAIN_tr_TRAINEND_1st_FIRST.csv``.
_TSB_NAME = re.compile(r"^(\d+)_(.+)_tr_(\d+)_1st_(\d+)\.csv$")
TSB_LABEL_COLUMN = "Label"


def _collection_folder(folder: str, data_dir: str | None, what: str) -> Path:
    return find_in_roots(folder, data_dir, what=what, how=f"Put the collection's files in <root>/{folder}/")


# ---- ADBench -------------------------------------------------------------------------------


def adbench_key(stem: str) -> str:
    """A set's name as DTE's tables spell it: the file stem without its number, lower case
    (``7_Cardiotocography`` -> ``cardiotocography``)."""
    return re.sub(r"^\d+_", "", stem).lower()


def adbench_files(data_dir: str | None = None) -> dict[str, Path]:
    """``{name: path}`` of every ADBench npz file in the first data root that has the folder,
    ordered by the number in the file name."""
    folder = _collection_folder(ADBENCH_FOLDER, data_dir, "ADBench collection")
    files = sorted(
        folder.glob("*.npz"), key=lambda p: (int(re.match(r"(\d*)", p.stem).group(1) or 0), p.stem)
    )
    if not files:
        raise FileNotFoundError(f"no ADBench .npz files in {folder}")
    return {adbench_key(p.stem): p for p in files}


def load_adbench(name: str, data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(X (N, D) float64, y (N,) int64)`` of the ADBench set ``name`` (``cardio``,
    ``7_Cardiotocography`` or ``Cardiotocography``; case does not matter).

    Raises:
      FileNotFoundError: no such set (the message lists those found).
      ValueError: a corrupt file, or arrays that are not ``X`` (N, D) finite and ``y`` 0/1.
    """
    files = adbench_files(data_dir)
    key = adbench_key(name)
    if key not in files:
        raise FileNotFoundError(f"ADBench set '{name}' not found; sets here: {', '.join(files)}")
    path = files[key]
    try:
        with np.load(path, allow_pickle=False) as f:
            if not {"X", "y"} <= set(f.files):
                raise ValueError(f"{path}: an ADBench file needs arrays 'X' and 'y', has {sorted(f.files)}")
            x, y = np.asarray(f["X"], np.float64), np.asarray(f["y"])
    except (OSError, EOFError, ValueError) as e:
        if isinstance(e, ValueError) and str(path) in str(e):
            raise
        raise ValueError(f"cannot read ADBench file {path} (corrupt or not an npz file): {e}") from e
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"{path}: need X (N, D) and y (N,), got {x.shape} and {y.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{path}: X holds NaN or inf values")
    if not set(np.unique(y).tolist()) <= {0, 1}:
        raise ValueError(f"{path}: labels must be 0 (normal) or 1 (anomaly)")
    return x, y.astype(np.int64)


@dataclasses.dataclass(frozen=True)
class TabularSplit:
    """One set under a protocol: standardised training and test rows, test labels, and what
    the protocol did to the rows (``resampled``: copied with replacement up to MIN_ROWS, so
    the same row can sit in train and test; ``subsampled``: cut to ``max_rows``)."""

    x_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    resampled: bool
    subsampled: bool


def protocol_split(
    x: np.ndarray,
    y: np.ndarray,
    *,
    protocol: str = "semi",
    seed: int = 0,
    max_rows: int = MAX_ROWS,
    min_rows: int = MIN_ROWS,
) -> TabularSplit:
    """DTE's protocols (Livernoche et al., ICLR 2024; ADBench's data generator), draw for draw
    with NumPy's legacy global generator seeded as theirs is, so the same rows are chosen:

    - sets with fewer than ``min_rows`` rows are resampled with replacement to ``min_rows``;
      sets with more than ``max_rows`` are subsampled to ``max_rows``;
    - ``semi``: train on the first half of the normal rows, test on the other half and every
      anomaly;
    - ``unsup``: train on a bootstrap sample of all rows (anomalies included), test on all rows;
    - a StandardScaler fitted on the training rows scales both.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got '{protocol}'")
    state = np.random.get_state()  # their generator is global: leave the caller's as it was
    try:
        np.random.seed(seed)
        resampled = len(y) < min_rows
        if resampled:
            np.random.seed(seed)
            idx = np.random.choice(np.arange(len(y)), min_rows, replace=True)
            x, y = x[idx], y[idx]
        subsampled = len(y) > max_rows
        if subsampled:
            np.random.seed(seed)
            idx = np.random.choice(np.arange(len(y)), max_rows, replace=False)
            x, y = x[idx], y[idx]
        if protocol == "semi":
            normal, anomalies = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
            n_train = round(0.5 * normal.size)
            train, test = normal[:n_train], np.append(normal[n_train:], anomalies)
        else:
            # Their generator then draws the (zero) labelled anomalies without replacement, a
            # permutation of the anomalies, before the bootstrap.
            np.random.choice(np.flatnonzero(y == 1), 0, replace=False)
            train = np.random.choice(np.arange(len(y)), size=len(y), replace=True)
            test = np.arange(len(y))
    finally:
        np.random.set_state(state)
    scaler = StandardScaler().fit(x[train])
    return TabularSplit(
        x_train=scaler.transform(x[train]).astype(np.float32),
        x_test=scaler.transform(x[test]).astype(np.float32),
        y_test=y[test],
        resampled=resampled,
        subsampled=subsampled,
    )


# ---- UCR anomaly archive -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class UCRSeries:
    """One series of the UCR anomaly archive (or a TSB-AD CSV file): points
    ``[0, train_end)`` are the training part; the anomaly is points ``begin .. end - 1``
    (``end`` exclusive). ``values`` is (T,) for the archive, (T, C) for a TSB-AD file;
    ``events``: every labelled ``(begin, end)`` where there are several (TSB-AD), else empty."""

    id: int
    name: str
    values: np.ndarray
    train_end: int
    begin: int
    end: int
    events: tuple[tuple[int, int], ...] = ()

    @property
    def anomalies(self) -> tuple[tuple[int, int], ...]:
        return self.events or ((self.begin, self.end),)

    @property
    def labels(self) -> np.ndarray:
        y = np.zeros(len(self.values), np.int64)
        for b, e in self.anomalies:
            y[b:e] = 1
        return y


def parse_ucr_name(filename: str) -> tuple[int, str, int, int, int]:
    """``(id, name, train_end, begin, end_exclusive)`` from an archive file name
    ``NNN_UCR_Anomaly_NAME_TRAINEND_BEGIN_END.txt[.gz]``: points ``BEGIN .. END - 1``, counted
    from 0, are the anomaly (as aeon reads InternalBleeding16, ``_1200_4187_4199``: 4187-4198);
    a name with END = BEGIN (a one-point anomaly, e.g. ``resperation2``) marks point BEGIN."""
    m = _UCR_NAME.match(Path(filename).name)
    if not m:
        raise ValueError(
            f"'{filename}' is not a UCR anomaly archive file name "
            "(NNN_UCR_Anomaly_NAME_TRAINEND_BEGIN_END.txt)"
        )
    begin = int(m.group(4))
    return int(m.group(1)), m.group(2), int(m.group(3)), begin, max(int(m.group(5)), begin + 1)


def parse_tsb_name(filename: str) -> tuple[int, str, int]:
    """``(index, name, train_end)`` from a TSB-AD file name
    ``NNN_DATASET_id_K_DOMAIN_tr_TRAINEND_1st_FIRST.csv``."""
    m = _TSB_NAME.match(Path(filename).name)
    if not m:
        raise ValueError(
            f"'{filename}' is not a TSB-AD file name (NNN_DATASET_id_K_DOMAIN_tr_TRAINEND_1st_FIRST.csv)"
        )
    return int(m.group(1)), m.group(2), int(m.group(3))


def series_files(folder: str | Path) -> dict[str, Path]:
    """``{set name: path}`` of the archive files (``NNN``) and TSB-AD CSV files (their stem)
    in ``folder``."""
    out = {}
    for p in sorted(Path(folder).iterdir()):
        if _UCR_NAME.match(p.name):
            out[f"{parse_ucr_name(p.name)[0]:03d}"] = p
        elif _TSB_NAME.match(p.name):
            out[p.name.removesuffix(".csv")] = p
    return out


def ucr_files(data_dir: str | None = None) -> dict[int, Path]:
    """``{id: path}`` of the archive's series in the first data root that has the folder."""
    folder = _collection_folder(UCR_FOLDER, data_dir, "UCR anomaly archive")
    files = {}
    for p in sorted(folder.iterdir()):
        if _UCR_NAME.match(p.name):
            files[parse_ucr_name(p.name)[0]] = p
    if not files:
        raise FileNotFoundError(f"no UCR archive files (NNN_UCR_Anomaly_*.txt[.gz]) in {folder}")
    return files


def read_ucr_values(path: Path) -> np.ndarray:
    """The values of an archive file: one per line, or all on one line split on whitespace."""
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt") as f:
            text = f.read()
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read UCR series {path} (corrupt file?): {e}") from e
    try:
        values = np.array(text.split(), dtype=np.float64)
    except ValueError as e:
        raise ValueError(f"{path}: a value is not a number ({e})") from None
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{path}: the series holds NaN or inf values")
    return values


def load_ucr(spec: str | int, data_dir: str | None = None) -> UCRSeries:
    """A series of the archive by id (``135``, ``ucr:135``), by file name (found in the data
    roots) or by a path to an archive file (TSB-AD CSV files: ``data.series.load_tsb``).

    Raises:
      FileNotFoundError: no such series or file.
      ValueError: a name that is not the archive's, a corrupt file, or labels that do not fit
        the series (training part or anomaly past its end).
    """
    spec = str(spec).removeprefix("ucr:")
    if spec.isdigit():
        files = ucr_files(data_dir)
        if int(spec) not in files:
            raise FileNotFoundError(f"UCR series {spec} not found; {len(files)} series are here")
        path = files[int(spec)]
    elif Path(spec).is_file():
        path = Path(spec)
    else:
        parse_ucr_name(spec)  # a clear error for a name that is not the archive's
        folder = _collection_folder(UCR_FOLDER, data_dir, "UCR anomaly archive")
        candidates = [folder / spec, folder / f"{spec}.gz"]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            raise FileNotFoundError(f"UCR series file {spec} not in {folder}")
    sid, name, train_end, begin, end = parse_ucr_name(path.name)
    values = read_ucr_values(path)
    if not 0 < train_end <= begin < end <= len(values):
        raise ValueError(
            f"{path}: {len(values)} points do not fit training part [0, {train_end}) and anomaly "
            f"[{begin}, {end})"
        )
    return UCRSeries(sid, name, values, train_end, begin, end)
