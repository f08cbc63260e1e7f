import numpy as np
import pytest

from jax_anomaly.data import Dataset, load_dataset, one_class_split, parse_normal


def _rows(a):
    return {r.tobytes() for r in np.ascontiguousarray(a)}


def test_split_invariants():
    ds = load_dataset("digits", seed=0)
    oc = one_class_split(ds, (0, 1), val_fraction=0.2, seed=0)
    raw_normals = _rows(ds.x_train[np.isin(ds.y_train, (0, 1))].astype(np.float32) / np.float32(16))
    assert _rows(oc.x_train) <= raw_normals and _rows(oc.x_val) <= raw_normals
    assert not _rows(oc.x_train) & _rows(oc.x_val)
    assert len(oc.x_train) + len(oc.x_val) == np.isin(ds.y_train, (0, 1)).sum()
    assert len(oc.x_test) == len(ds.x_test)
    np.testing.assert_array_equal(oc.y_test, ~np.isin(ds.y_test, (0, 1)))
    assert oc.x_train.min() >= 0 and oc.x_train.max() <= 1


def test_split_is_seeded():
    ds = load_dataset("digits")
    a, b = one_class_split(ds, (0,), seed=1), one_class_split(ds, (0,), seed=1)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.x_val, one_class_split(ds, (0,), seed=2).x_val)


def test_scaler_fitted_on_normal_training_part_only():
    ds = load_dataset("synthetic", seed=0)
    oc = one_class_split(ds, (0,), seed=0)
    np.testing.assert_allclose(oc.x_train.min(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(oc.x_train.max(axis=0), 1, atol=1e-6)
    # anomalies (mean 5) lie far outside the normal training range after scaling
    assert oc.x_test[oc.y_test == 1].mean() > 1.0
    assert oc.x_val.max() <= 1.5  # validation normals were not used to fit, so they may exceed 1 a little


def test_absent_normal_class():
    with pytest.raises(ValueError, match="normal class\\(es\\) \\[7\\] not in the training labels"):
        one_class_split(load_dataset("synthetic"), (7,))


def test_nan_in_data():
    x = np.ones((10, 2), np.float32)
    x[3, 1] = np.nan
    ds = Dataset("t", x, np.zeros(10, int), x.copy(), np.zeros(10, int))
    with pytest.raises(ValueError, match="NaN or inf"):
        one_class_split(ds, (0,))


@pytest.mark.parametrize("spec, expected", [("0", (0,)), ("4,0,2", (0, 2, 4)), (3, (3,)), ([1, 1], (1,))])
def test_parse_normal(spec, expected):
    assert parse_normal(spec) == expected


@pytest.mark.parametrize("spec", ["a", ",", "0;1"])
def test_parse_normal_errors(spec):
    with pytest.raises(ValueError):
        parse_normal(spec)


def test_process_shares_of_a_lazily_read_idx_data_set_make_up_the_whole_split(tmp_path):
    """Each of 3 shares reads only its rows of the IDX files; together, in order, they are the
    split one process makes (validation rows whole in every share)."""
    from jax_anomaly.data import write_idx

    rng = np.random.default_rng(0)
    folder = tmp_path / "mnist"
    folder.mkdir()
    for stem, n in (("train", 300), ("t10k", 120)):
        write_idx(folder / f"{stem}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{stem}-labels-idx1-ubyte.gz", rng.integers(0, 3, n))
    whole = one_class_split(load_dataset("mnist", data_dir=str(tmp_path)), (1,), seed=4)
    lazy = load_dataset("mnist", data_dir=str(tmp_path), lazy=True)
    shares = [one_class_split(lazy, (1,), seed=4, share=(p, 3)) for p in range(3)]
    np.testing.assert_array_equal(np.concatenate([s.x_train for s in shares]), whole.x_train)
    np.testing.assert_array_equal(np.concatenate([s.x_test for s in shares]), whole.x_test)
    for s in shares:
        np.testing.assert_array_equal(s.x_val, whole.x_val)
        np.testing.assert_array_equal(s.y_test, whole.y_test)
        assert s.n_train == whole.n_train and len(s.x_train) <= -(-whole.n_train // 3)


@pytest.mark.parametrize("dataset", ["mnist", "synthetic"])
def test_split_written_to_a_store_equals_the_split_in_memory(tmp_path, monkeypatch, dataset):
    """With a store the split's rows are written a part at a time (patched small here) into
    float32 memory maps, equal to the split in memory: lazily read IDX images and tabular
    rows (the scaler applied by parts)."""
    from jax_anomaly.data import one_class, write_idx

    rng = np.random.default_rng(1)
    (tmp_path / "mnist").mkdir()
    for stem, n in (("train", 90), ("t10k", 40)):
        write_idx(tmp_path / "mnist" / f"{stem}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / "mnist" / f"{stem}-labels-idx1-ubyte.gz", rng.integers(0, 2, n))
    ds = load_dataset(dataset, data_dir=str(tmp_path), seed=0)
    lazy = load_dataset(dataset, data_dir=str(tmp_path), seed=0, lazy=True)
    monkeypatch.setattr(one_class, "STORE_BYTES", 4 * 7 * ds.x_train.shape[1] + 1)  # 7 rows a part
    want = one_class_split(ds, (0,), seed=3)
    got = one_class_split(lazy, (0,), seed=3, store=tmp_path / "store")
    for name in ("x_train", "x_val", "x_test"):
        assert isinstance(getattr(got, name), np.memmap) and getattr(got, name).dtype == np.float32
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["test.npy", "train.npy", "val.npy"]
