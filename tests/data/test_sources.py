import numpy as np
import pytest

from jax_anomaly.data import load_dataset, make_synthetic, write_idx


def _fake_mnist(root, folder="mnist", n=20):
    rng = np.random.default_rng(0)
    d = root / folder
    d.mkdir(parents=True)
    write_idx(d / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
    write_idx(d / "train-labels-idx1-ubyte.gz", np.arange(n) % 10)
    write_idx(d / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n // 2, 28, 28)))
    write_idx(d / "t10k-labels-idx1-ubyte.gz", np.arange(n // 2) % 10)


def test_idx_dataset_from_data_dir(tmp_path):
    _fake_mnist(tmp_path)
    ds = load_dataset("mnist", data_dir=str(tmp_path))
    assert ds.x_train.shape == (20, 784) and ds.x_test.shape == (10, 784)
    assert ds.image_shape == (28, 28) and ds.value_max == 255.0
    np.testing.assert_array_equal(ds.y_train, np.arange(20) % 10)


def test_data_root_from_environment(tmp_path, monkeypatch):
    _fake_mnist(tmp_path, folder="fashion-mnist")
    monkeypatch.setenv("JAX_ANOMALY_DATA", str(tmp_path))
    assert load_dataset("fashion_mnist").x_train.shape == (20, 784)


def test_missing_files_name_paths_and_remedy(tmp_path, monkeypatch):
    monkeypatch.setenv("JAX_ANOMALY_DATA", str(tmp_path / "env"))
    import jax_anomaly.data.sources as sources

    monkeypatch.setattr(sources, "data_roots", lambda d=None: [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("fashion_mnist")
    assert str(tmp_path / "a" / "fashion-mnist") in str(e.value)
    assert "apt-get install -y dataset-fashion-mnist" in str(e.value)


def test_synthetic_is_seeded_and_shaped():
    x, y = make_synthetic(seed=3)
    assert x.shape == (1050, 20) and y.sum() == 50
    np.testing.assert_array_equal(x, make_synthetic(seed=3)[0])
    assert not np.array_equal(x, make_synthetic(seed=4)[0])
    assert abs(x[y == 1].mean() - 5.0) < 0.2 and abs(x[y == 0].mean()) < 0.1


def test_stratified_split_keeps_anomaly_rate():
    ds = load_dataset("synthetic", seed=0, test_fraction=0.3)
    assert len(ds.x_train) + len(ds.x_test) == 1050
    assert ds.y_test.sum() == 15 and ds.y_train.sum() == 35


def test_npz(tmp_path):
    x, y = make_synthetic(n_normal=40, n_anomalies=10, dim=3)
    np.savez(tmp_path / "d.npz", X=x, y=y)
    ds = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert ds.x_train.shape[1] == 3 and ds.y_test.sum() + ds.y_train.sum() == 10
    np.savez(tmp_path / "bad.npz", X=x)
    with pytest.raises(ValueError, match="missing \\['y'\\]"):
        load_dataset(f"npz:{tmp_path / 'bad.npz'}")


def _write_csv(path, rows):
    path.write_text("\n".join(",".join(map(str, r)) for r in rows) + "\n")


def test_csv(tmp_path):
    rows = [["a", "b", "label"]] + [[i, i * 2, int(i >= 16)] for i in range(20)]
    _write_csv(tmp_path / "d.csv", rows)
    ds = load_dataset(f"csv:{tmp_path / 'd.csv'}")
    assert ds.x_train.shape[1] == 2
    rows[0][2] = "is_anomaly"
    _write_csv(tmp_path / "e.csv", rows)
    ds = load_dataset(f"csv:{tmp_path / 'e.csv'}", label_column="is_anomaly")
    assert ds.y_train.sum() + ds.y_test.sum() == 4


@pytest.mark.parametrize(
    "rows, message",
    [
        ([["a", "label"], ["x", 0], [1, 1]], "non-numeric value 'x' in column 'a'"),
        ([["a", "b"], [1, 0], [2, 1]], "label column 'label' not in header"),
        ([["a", "label"], [1, 0], [2, 3]], "labels must be 0"),
        ([["a", "label"]], "at least one data row"),
    ],
)
def test_csv_errors(tmp_path, rows, message):
    _write_csv(tmp_path / "d.csv", rows)
    with pytest.raises(ValueError, match=message):
        load_dataset(f"csv:{tmp_path / 'd.csv'}")


@pytest.mark.parametrize(
    "spec, error, message",
    [
        ("cifar", ValueError, "unknown data set 'cifar'"),
        ("csv:/nonexistent/file.csv", FileNotFoundError, "data file not found"),
        ("npz:", ValueError, "needs a path"),
    ],
)
def test_bad_specs(spec, error, message):
    with pytest.raises(error, match=message):
        load_dataset(spec)


def test_tfds_source_only_for_idx_sets():
    with pytest.raises(ValueError, match="supports mnist and fashion_mnist"):
        load_dataset("digits", source="tfds")
