"""ADBench and UCR archive sources: names, DTE's protocols draw for draw, clear errors."""

import gzip

import numpy as np
import pytest

from jax_anomaly.data.collections import (
    adbench_files,
    load_adbench,
    load_ucr,
    parse_ucr_name,
    protocol_split,
)
from jax_anomaly.data.series import load_tsb


@pytest.fixture()
def adbench_root(tmp_path):
    folder = tmp_path / "adbench"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for stem, n in (("7_Cardiotocography", 1200), ("42_WBC", 200), ("2_big", 1500)):
        y = (rng.random(n) < 0.1).astype(np.int64)
        x = rng.normal(size=(n, 4)) + 3 * y[:, None]
        np.savez(folder / f"{stem}.npz", X=x, y=y)
    (folder / "9_broken.npz").write_bytes(b"not a zip")
    return tmp_path


def test_adbench_names_and_files(adbench_root):
    files = adbench_files(adbench_root)
    assert list(files) == ["big", "cardiotocography", "broken", "wbc"]  # ordered by file number
    for name in ("cardiotocography", "7_Cardiotocography", "CARDIOTOCOGRAPHY"):
        x, y = load_adbench(name, adbench_root)
        assert x.shape == (1200, 4) and y.dtype == np.int64


def test_adbench_errors_name_what_is_wrong(adbench_root, monkeypatch):
    with pytest.raises(FileNotFoundError, match="'nope' not found; sets here: big, cardiotocography"):
        load_adbench("nope", adbench_root)
    with pytest.raises(ValueError, match="cannot read ADBench file .*9_broken.npz"):
        load_adbench("broken", adbench_root)
    monkeypatch.setattr("jax_anomaly.data.roots.data_roots", lambda d=None: [adbench_root / "adbench"])
    with pytest.raises(FileNotFoundError, match="ADBench collection not found"):
        load_adbench("wbc")  # no root has the folder


def test_semi_protocol_trains_on_the_first_half_of_the_normal_rows(adbench_root):
    x, y = load_adbench("cardiotocography", adbench_root)
    split = protocol_split(x, y, protocol="semi", seed=3)
    normal = np.flatnonzero(y == 0)
    train = x[normal[: round(0.5 * len(normal))]]
    np.testing.assert_allclose(split.x_train.mean(0), 0, atol=1e-5)  # standardised on train
    mu, sd = train.mean(0), train.std(0)
    np.testing.assert_allclose(split.x_train, (train - mu) / sd, rtol=1e-4, atol=1e-5)
    assert split.y_test.sum() == y.sum() and len(split.y_test) == len(y) - len(train)
    assert not split.resampled and not split.subsampled


def test_resampling_and_subsampling_draw_as_the_legacy_generator_does(adbench_root):
    x, y = load_adbench("wbc", adbench_root)
    state = np.random.get_state()
    split = protocol_split(x, y, seed=2)
    assert np.all(np.random.get_state()[1] == state[1])  # the caller's generator is untouched
    np.random.seed(2)
    idx = np.random.choice(np.arange(len(y)), 1000, replace=True)
    yy = y[idx]
    assert split.resampled and len(split.y_test) == 1000 - round(0.5 * (yy == 0).sum())
    x, y = load_adbench("big", adbench_root)
    split = protocol_split(x, y, seed=1, max_rows=1000)
    np.random.seed(1)
    idx = np.random.choice(np.arange(len(y)), 1000, replace=False)
    assert split.subsampled and split.y_test.sum() == y[idx].sum()


def test_unsupervised_protocol_bootstraps_all_rows(adbench_root):
    x, y = load_adbench("cardiotocography", adbench_root)
    split = protocol_split(x, y, protocol="unsup", seed=0)
    assert len(split.x_train) == len(split.x_test) == len(y) and np.array_equal(split.y_test, y)
    with pytest.raises(ValueError, match="protocol must be one of"):
        protocol_split(x, y, protocol="sup")


@pytest.fixture()
def ucr_root(tmp_path):
    folder = tmp_path / "ucr_anomaly"
    folder.mkdir()
    values = np.sin(np.arange(600) / 5.0)
    (folder / "001_UCR_Anomaly_Lines_200_400_410.txt").write_text("\n".join(f"{v:.6f}" for v in values))
    with gzip.open(folder / "002_UCR_Anomaly_OneLine_300_500_520.txt.gz", "wt") as f:
        f.write("  ".join(f"{v:.6f}" for v in values))
    (folder / "003_UCR_Anomaly_Short_200_590_700.txt").write_text("\n".join(["1.0"] * 600))
    (folder / "004_UCR_Anomaly_Bad_200_400_410.txt").write_text("1.0\nabc\n")
    return tmp_path


def test_ucr_series_by_id_name_or_path(ucr_root):
    s = load_ucr("ucr:1", ucr_root)
    assert (s.id, s.name, s.train_end, s.begin, s.end) == (1, "Lines", 200, 400, 410)
    assert s.labels.sum() == 10 and s.labels[400] == 1 and s.labels[410] == 0
    s2 = load_ucr("002_UCR_Anomaly_OneLine_300_500_520.txt", ucr_root)  # .gz found, one line split
    assert len(s2.values) == 600 and s2.train_end == 300
    path = ucr_root / "ucr_anomaly" / "001_UCR_Anomaly_Lines_200_400_410.txt"
    np.testing.assert_array_equal(load_ucr(str(path)).values, s.values)


def test_ucr_errors(ucr_root):
    with pytest.raises(FileNotFoundError, match="UCR series 77 not found"):
        load_ucr("77", ucr_root)
    with pytest.raises(ValueError, match="do not fit"):
        load_ucr("3", ucr_root)
    with pytest.raises(ValueError, match="not a number"):
        load_ucr("4", ucr_root)
    with pytest.raises(ValueError, match="not a UCR anomaly archive file name"):
        parse_ucr_name("series.txt")


def test_ucr_one_point_anomaly_named_with_begin_equal_to_end():
    assert parse_ucr_name("187_UCR_Anomaly_resperation2_30000_168250_168250.txt.gz")[3:] == (168250, 168251)


def test_tsb_ad_files_load_with_their_split_and_errors_are_clear(tmp_path):
    good = tmp_path / "007_Demo_id_2_Facility_tr_40_1st_60.csv"
    rows = ["a,b,Label", *(f"{i},{-i},{int(60 <= i < 65)}" for i in range(100))]
    good.write_text("\n".join(rows) + "\n")
    s = load_tsb(good)
    assert (s.id, s.name, s.train_end, s.anomalies) == (7, "Demo_id_2_Facility", 40, ((60, 65),))
    assert s.values.shape == (100, 2) and s.labels.sum() == 5
    with pytest.raises(ValueError, match="not a TSB-AD file name"):
        load_tsb(tmp_path / "series.csv")
    late = tmp_path / "008_Demo_id_2_Facility_tr_70_1st_60.csv"
    late.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match="no labelled anomaly after the training part"):
        load_tsb(late)
