"""Time series as NumPy arrays: labelled CSV series (``ts:PATH``), the named offline series
and a seeded generator of point, contextual and collective anomalies."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np

from jax_anomaly.data.roots import find_in_roots

LABEL_COLUMN = "is_anomaly"
# Columns of a series CSV that are neither values nor labels.
_INDEX_COLUMNS = ("timestamp", "time", "index", "date", "datetime")
_FOLDER = "timeseries"
# name -> (train file, test file) inside <data root>/timeseries/.
NAMED_SERIES = {
    "ucr_internal_bleeding16": (
        "135_UCR_Anomaly_InternalBleeding16_TRAIN.csv",
        "135_UCR_Anomaly_InternalBleeding16_TEST.csv",
    ),
    # Semi-supervised: trained on the clean series.
    "ecg_diff_count_3": ("ecg-diff-count-3_TRAIN_NA.csv", "ecg-diff-count-3_TEST.csv"),
    # Unsupervised: trained on a series holding anomalies of its own (labels unused in training).
    "ecg_diff_count_3_unsupervised": ("ecg-diff-count-3_TRAIN_A.csv", "ecg-diff-count-3_TEST.csv"),
}
SYNTHETIC_KINDS = ("point", "contextual", "collective")
# ts_synthetic (all kinds mixed) and ts_synthetic_<kind>.
SYNTHETIC_SERIES = ("ts_synthetic", *(f"ts_synthetic_{k}" for k in SYNTHETIC_KINDS))


@dataclasses.dataclass(frozen=True)
class Series:
    """A labelled time series split in time into a training and a test part.

    Attributes:
      name: data set name.
      train: (T_train, C) float32 values, C channels.
      train_labels: (T_train,) 0/1 (all 0 for a clean training series; never used to train).
      test: (T_test, C) float32 values.
      test_labels: (T_test,) 0/1 point labels, 1 = anomalous.
      events: ``(start, end, kind)`` of each labelled test event, ``end`` exclusive; the kind is
        ``'anomaly'`` when the source does not say.
    """

    name: str
    train: np.ndarray
    train_labels: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray
    events: tuple[tuple[int, int, str], ...] = ()

    @property
    def n_channels(self) -> int:
        return self.train.shape[1]


def label_events(labels: np.ndarray, kind: str = "anomaly") -> tuple[tuple[int, int, str], ...]:
    """The runs of 1 in a 0/1 label vector as ``(start, end_exclusive, kind)``."""
    padded = np.concatenate([[0], np.asarray(labels) > 0, [0]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return tuple((int(s), int(e), kind) for s, e in zip(edges[::2], edges[1::2], strict=True))


def read_series_csv(path: str | Path, label_column: str = LABEL_COLUMN) -> tuple[np.ndarray, np.ndarray]:
    """``(values (T, C) float32, labels (T,) int64)`` from a CSV with a header: every column but
    the label column and a timestamp/index column is a value channel.

    Raises:
      FileNotFoundError: no such file.
      ValueError: no label column, no value column, a non-numeric or non-finite value, labels
        other than 0/1, or fewer than 2 rows.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"time series file {path} does not exist")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 3:
        raise ValueError(f"{path}: a series needs a header and at least 2 rows, got {len(rows)} lines")
    header = [h.strip() for h in rows[0]]
    if label_column not in header:
        raise ValueError(f"{path}: no '{label_column}' column (columns: {header})")
    value_cols = [i for i, h in enumerate(header) if h != label_column and h.lower() not in _INDEX_COLUMNS]
    if not value_cols:
        raise ValueError(f"{path}: no value column besides '{label_column}' and the timestamp")
    try:
        table = np.asarray([[float(r[i]) for i in range(len(header))] for r in rows[1:] if r], np.float64)
    except (ValueError, IndexError) as e:
        raise ValueError(f"{path}: every row needs {len(header)} numeric fields ({e})") from e
    values, labels = table[:, value_cols], table[:, header.index(label_column)]
    if not np.isfinite(values).all():
        bad = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
        raise ValueError(f"{path}: non-finite value in data row {bad}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"{path}: '{label_column}' must be 0 or 1; found {sorted(set(labels.tolist()))[:5]}")
    return values.astype(np.float32), labels.astype(np.int64)


def load_tsb(path: str | Path):
    """A TSB-AD CSV file (TSB-AD-U or TSB-AD-M) as a ``collections.UCRSeries``: every column
    but ``Label`` is a value channel; the training part ends where the file name says
    (``_tr_N_``); ``events`` holds every labelled anomaly after it.

    Raises:
      FileNotFoundError: no such file.
      ValueError: a name that is not TSB-AD's, a malformed file, no anomaly after the training
        part, or a training part outside the series.
    """
    from jax_anomaly.data.collections import TSB_LABEL_COLUMN, UCRSeries, parse_tsb_name

    path = Path(path)
    index, name, train_end = parse_tsb_name(path.name)
    values, labels = read_series_csv(path, label_column=TSB_LABEL_COLUMN)
    if not 0 < train_end < len(values):
        raise ValueError(f"{path}: training part [0, {train_end}) does not fit {len(values)} points")
    events = tuple((b, e) for b, e, _ in label_events(labels) if e > train_end)
    if not events:
        raise ValueError(f"{path}: no labelled anomaly after the training part (point {train_end})")
    values = values[:, 0] if values.shape[1] == 1 else values
    return UCRSeries(index, name, values.astype(np.float64), train_end, events[0][0], events[0][1], events)


def find_series_file(filename: str, data_dir: str | None = None) -> Path:
    """The first ``<root>/timeseries/filename`` over the data roots."""
    return find_in_roots(
        Path(_FOLDER) / filename,
        data_dir,
        what=f"time series file {filename}",
        how=f"Put the file in <root>/{_FOLDER}/",
        kind="file",
    )


def load_series(
    name: str,
    *,
    data_dir: str | None = None,
    test_fraction: float = 0.3,
    seed: int = 0,
    synthetic: dict | None = None,
) -> Series:
    """A series by name: one of ``NAMED_SERIES``, ``ts_synthetic[_KIND]`` (``make_series``, options
    in ``synthetic``, seeded by ``seed``), ``ucr:ID`` (a UCR archive series: its training part,
    then the rest as the test part), ``tsb:PATH`` (a TSB-AD-U/M CSV file, split where its
    name says), ``ts:PATH`` (the last ``test_fraction`` of the points
    are the test part), ``ts:PATH@N`` (the first N points train) or ``ts:TRAIN,TEST``.

    Raises:
      ValueError: unknown name, bad split or malformed file.
      FileNotFoundError: a file is missing (the message names where it looked).
    """
    if name in NAMED_SERIES:
        train_file, test_file = (find_series_file(f, data_dir) for f in NAMED_SERIES[name])
        x_train, y_train = read_series_csv(train_file)
        x_test, y_test = read_series_csv(test_file)
        return _series(name, x_train, y_train, x_test, y_test)
    if name in SYNTHETIC_SERIES:
        kind = name.removeprefix("ts_synthetic").lstrip("_") or "mixed"
        return make_series(kind=kind, seed=seed, **(synthetic or {}))
    if name.startswith(("ucr:", "tsb:")):
        from jax_anomaly.data.collections import load_ucr

        u = load_tsb(name[4:]) if name.startswith("tsb:") else load_ucr(name, data_dir)
        x, y = u.values.astype(np.float32).reshape(len(u.values), -1), u.labels
        return _series(name, x[: u.train_end], y[: u.train_end], x[u.train_end :], y[u.train_end :])
    if not name.startswith("ts:"):
        raise ValueError(
            f"unknown series '{name}'; expected one of {', '.join(series_names())}, "
            "ucr:ID, tsb:PATH or ts:PATH"
        )
    spec = name[3:]
    if "," in spec:
        train_path, test_path = spec.split(",", 1)
        x_train, y_train = read_series_csv(train_path)
        x_test, y_test = read_series_csv(test_path)
        if x_train.shape[1] != x_test.shape[1]:
            raise ValueError(f"{name}: train has {x_train.shape[1]} channels, test {x_test.shape[1]}")
        return _series(name, x_train, y_train, x_test, y_test)
    path, _, split = spec.partition("@")
    x, y = read_series_csv(path)
    if split:
        if not split.isdigit() or not 0 < int(split) < len(x):
            raise ValueError(f"{name}: the split after '@' must be a point index in 1..{len(x) - 1}")
        cut = int(split)
    else:
        if not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        cut = int(round(len(x) * (1 - test_fraction)))
    return _series(name, x[:cut], y[:cut], x[cut:], y[cut:])


def _series(name, x_train, y_train, x_test, y_test) -> Series:
    return Series(name, x_train, y_train, x_test, y_test, events=label_events(y_test))


def series_names() -> tuple[str, ...]:
    """The built-in series names (besides ``ts:PATH``)."""
    return (*NAMED_SERIES, *SYNTHETIC_SERIES)


def is_series(name: str) -> bool:
    """Whether a data set name denotes a time series."""
    return name in NAMED_SERIES or name in SYNTHETIC_SERIES or name.startswith(("ts:", "ucr:", "tsb:"))


# ---- synthetic series -----------------------------------------------------------------


def _signal(t: np.ndarray, period: float) -> np.ndarray:
    """A seasonal pattern with a sharp and a slow component (not a pure sine: its phase is
    recognisable from one value and its neighbours)."""
    phase = 2 * np.pi * t / period
    return np.sin(phase) + 0.4 * np.sin(2 * phase + 0.5) + 0.25 * np.cos(3 * phase)


def make_series(
    *,
    kind: str = "mixed",
    n_train: int = 2000,
    n_test: int = 4000,
    period: int = 50,
    noise: float = 0.05,
    n_anomalies: int = 6,
    seed: int = 0,
) -> Series:
    """A seeded seasonal series with labelled anomalies of one kind (or all three, ``'mixed'``).

    - point: single-step spikes of 1.5 to 2.5 times the signal's full range beyond its extreme.
    - contextual: 5 to 10 steps replaced by the values half a period away: every value lies
      inside the global range but is wrong for its phase.
    - collective: 1 to 2 periods that are frozen (constant), at double frequency, shifted in
      level by 15 % of the range, or with the sharp component missing (a shape change).

    The training part is clean. Events are separated by at least two periods.

    Returns:
      ``Series`` with ``events`` naming each one's kind (``'collective:frozen'``, ...).

    Raises:
      ValueError: a bad kind or size, or too many anomalies for the test length.
    """
    kinds = SYNTHETIC_KINDS if kind == "mixed" else (kind,)
    if kind != "mixed" and kind not in SYNTHETIC_KINDS:
        raise ValueError(f"unknown anomaly kind '{kind}'; expected mixed or one of {SYNTHETIC_KINDS}")
    if period < 4 or n_train < 2 * period or noise < 0 or n_anomalies < 1:
        raise ValueError(
            f"need period >= 4, n_train >= 2 * period, noise >= 0, n_anomalies >= 1; got period "
            f"{period}, n_train {n_train}, noise {noise}, n_anomalies {n_anomalies}"
        )
    slot = 5 * period  # each event gets its own slot: two periods of margin on each side
    if n_anomalies * slot > n_test - 2 * period:
        raise ValueError(
            f"{n_anomalies} anomalies need n_test >= {n_anomalies * slot + 2 * period}, got {n_test}"
        )
    rng = np.random.default_rng(seed)
    t = np.arange(n_train + n_test, dtype=np.float64)
    clean = _signal(t, period)
    lo, hi = clean.min(), clean.max()
    span = hi - lo
    test = clean[n_train:].copy()
    labels = np.zeros(n_test, np.int64)
    events = []
    slots = rng.choice((n_test - 2 * period) // slot, size=n_anomalies, replace=False)
    for i, s in enumerate(np.sort(slots)):
        k = kinds[i % len(kinds)]
        start = period + int(s) * slot + 2 * period + int(rng.integers(0, period))
        if k == "point":
            end = start + 1
            test[start] = (
                (hi + rng.uniform(1.5, 2.5) * span)
                if rng.random() < 0.5
                else (lo - rng.uniform(1.5, 2.5) * span)
            )
        elif k == "contextual":
            end = start + int(rng.integers(5, 11))
            test[start:end] = _signal(t[n_train + start : n_train + end] + period / 2, period)
        else:
            end = start + int(rng.integers(period, 2 * period + 1))
            sub = ("frozen", "frequency", "level", "shape")[int(rng.integers(4))]
            tt = t[n_train + start : n_train + end]
            if sub == "frozen":
                test[start:end] = test[start]
            elif sub == "frequency":
                test[start:end] = _signal(2 * tt, period)
            elif sub == "level":
                test[start:end] += 0.15 * span
            else:
                phase = 2 * np.pi * tt / period
                test[start:end] = np.sin(phase)
            k = f"collective:{sub}"
        labels[start:end] = 1
        events.append((start, end, k))
    train = clean[:n_train] + noise * rng.standard_normal(n_train)
    test = test + noise * rng.standard_normal(n_test)
    name = "ts_synthetic" if kind == "mixed" else f"ts_synthetic_{kind}"
    return Series(
        name,
        train[:, None].astype(np.float32),
        np.zeros(n_train, np.int64),
        test[:, None].astype(np.float32),
        labels,
        events=tuple(events),
    )
