"""The time series data layer: CSV reading, named series, splits and the synthetic generator."""

import numpy as np
import pytest

from jax_anomaly.data.series import (
    SYNTHETIC_KINDS,
    label_events,
    load_series,
    make_series,
    read_series_csv,
)


def _write(path, rows, header="timestamp,value,is_anomaly"):
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


def test_read_series_csv_multivariate(tmp_path):
    p = _write(
        tmp_path / "s.csv", [[0, 1.0, 2.0, 0], [1, 1.5, 2.5, 1], [2, 1.2, 2.2, 0]], "time,a,b,is_anomaly"
    )
    x, y = read_series_csv(p)
    assert x.shape == (3, 2) and x.dtype == np.float32
    np.testing.assert_array_equal(y, [0, 1, 0])


@pytest.mark.parametrize(
    "rows, header, match",
    [
        ([[0, 1.0, 0], [1, 2.0, 0]], "timestamp,value,label", "no 'is_anomaly' column"),
        ([[0, 1.0, 0], [1, 2.0, 2]], "timestamp,value,is_anomaly", "must be 0 or 1"),
        ([[0, 1.0, 0], [1, "nan", 0]], "timestamp,value,is_anomaly", "non-finite value in data row 1"),
        ([[0, 0], [1, 1]], "timestamp,is_anomaly", "no value column"),
    ],
)
def test_read_series_csv_errors(tmp_path, rows, header, match):
    with pytest.raises(ValueError, match=match):
        read_series_csv(_write(tmp_path / "bad.csv", rows, header))


def test_ts_path_splits(tmp_path):
    rows = [[i, float(i), int(i == 7)] for i in range(10)]
    p = _write(tmp_path / "s.csv", rows)
    s = load_series(f"ts:{p}@6")
    assert len(s.train) == 6 and len(s.test) == 4 and s.events == ((1, 2, "anomaly"),)
    s = load_series(f"ts:{p}", test_fraction=0.3)
    assert len(s.train) == 7 and len(s.test) == 3
    s = load_series(f"ts:{p},{p}")
    assert len(s.train) == len(s.test) == 10
    with pytest.raises(ValueError, match="split after '@'"):
        load_series(f"ts:{p}@10")


def test_named_series_load():
    try:
        s = load_series("ucr_internal_bleeding16")
    except FileNotFoundError:
        pytest.skip("../shared/data/timeseries not present")
    assert s.train.shape == (1200, 1) and s.test.shape == (7501, 1)
    assert s.events == ((4187, 4199, "anomaly"),) and s.train_labels.sum() == 0
    e = load_series("ecg_diff_count_3_unsupervised")
    assert e.train_labels.sum() == 300 and e.test_labels.sum() == 300


def test_missing_named_series_says_where(tmp_path, monkeypatch):
    monkeypatch.setattr("jax_anomaly.data.roots.data_roots", lambda d=None: [tmp_path])
    with pytest.raises(FileNotFoundError, match="timeseries"):
        load_series("ecg_diff_count_3")


@pytest.mark.parametrize("kind", SYNTHETIC_KINDS)
def test_generator_labels_match_events(kind):
    s = make_series(kind=kind, n_train=500, n_test=2000, period=25, n_anomalies=4, seed=3)
    assert len(s.events) == 4 and all(k.startswith(kind) for _, _, k in s.events)
    labels = np.zeros(len(s.test), int)
    for start, end, _ in s.events:
        labels[start:end] = 1
    np.testing.assert_array_equal(labels, s.test_labels)
    assert label_events(s.test_labels) == tuple((a, b, "anomaly") for a, b, _ in s.events)
    lo, hi = s.train.min(), s.train.max()
    for start, end, _ in s.events:
        values = s.test[start:end, 0]
        if kind == "point":
            assert end - start == 1 and (values[0] > hi or values[0] < lo)  # beyond the range
        elif kind == "contextual":
            assert (
                5 <= end - start <= 10 and lo - 0.2 <= values.min() and values.max() <= hi + 0.2
            )  # in range
        else:
            assert end - start >= 25  # at least a period
    assert s.train_labels.sum() == 0


def test_generator_is_seeded_and_validates():
    a, b = make_series(seed=1), make_series(seed=1)
    np.testing.assert_array_equal(a.test, b.test)
    assert not np.array_equal(a.test, make_series(seed=2).test)
    with pytest.raises(ValueError, match="unknown anomaly kind"):
        make_series(kind="seasonal")
    with pytest.raises(ValueError, match="need n_test"):
        make_series(n_anomalies=50, n_test=1000)
