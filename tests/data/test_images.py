"""Image folders (anomalib's Folder layout, the magnetic tile layout): sizes, grey/RGB, masks,
clear errors."""

import numpy as np
import pytest
from PIL import Image

from jax_anomaly.data.images import load_image_folder, load_magnetic_tile


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).save(path)


@pytest.fixture()
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        _save(tmp_path / "good" / f"{i}.png", rng.integers(0, 255, (40, 30, 3)))
    mask = np.zeros((40, 30), np.uint8)
    mask[10:20, 5:15] = 255
    _save(tmp_path / "scratch" / "0.png", rng.integers(0, 255, (40, 30, 3)))
    _save(tmp_path / "ground_truth" / "scratch" / "0_mask.png", mask)
    _save(tmp_path / "dent" / "0.png", rng.integers(0, 255, (40, 30, 3)))  # no mask
    return tmp_path


def test_folder_layout_with_masks(folder):
    s = load_image_folder(folder, mask_dir="ground_truth", size=16)
    assert s.images.shape == (5, 16, 16, 1) and s.labels.tolist() == [0, 0, 0, 1, 1]
    assert list(s.kinds) == ["good"] * 3 + ["dent", "scratch"]
    assert s.has_mask.tolist() == [False] * 4 + [True] and s.masks[4].any() and not s.masks[:4].any()
    rgb = load_image_folder(folder, mask_dir="ground_truth", size=8, grey=False, mode="crop")
    assert rgb.images.shape == (5, 8, 8, 3)


def test_folder_errors(folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="no normal-image folder 'normal'"):
        load_image_folder(folder, normal="normal")
    with pytest.raises(ValueError, match="mode must be one of"):
        load_image_folder(folder, mode="stretch")
    (folder / "dent" / "1.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="cannot read image .*1.jpg"):
        load_image_folder(folder, mask_dir="ground_truth")


def test_magnetic_tile_layout(tmp_path, monkeypatch):
    root = tmp_path / "magnetic_tile"
    rng = np.random.default_rng(1)
    for i in range(2):
        _save(root / "MT_Free" / "Imgs" / f"f{i}.jpg", rng.integers(0, 255, (50, 60)))
        _save(root / "MT_Free" / "Imgs" / f"f{i}.png", np.zeros((50, 60)))
    mask = np.zeros((50, 60))
    mask[:10] = 255
    _save(root / "MT_Crack" / "Imgs" / "c0.jpg", rng.integers(0, 255, (50, 60)))
    _save(root / "MT_Crack" / "Imgs" / "c0.png", mask)
    s = load_magnetic_tile(tmp_path, size=10)
    assert len(s) == 3 and s.labels.tolist() == [0, 0, 1]  # the PNG masks are not images
    assert s.masks[2, :2].all() and not s.masks[2, 3:].any()
    monkeypatch.setattr("jax_anomaly.data.roots.data_roots", lambda d=None: [root])
    with pytest.raises(FileNotFoundError, match="magnetic tile set not found"):
        load_magnetic_tile(size=10)


def test_store_decodes_once_into_memory_maps(folder, monkeypatch):
    """With a store the images and masks are decoded into ``.npy`` files and read back as
    memory maps equal to the in-memory load; a second load reads them without decoding, a
    changed file or an index cut short by a crash decodes again."""
    from jax_anomaly.data import images

    store = folder.parent / f"{folder.name}_store"  # beside the layout, not a defect folder in it
    want = load_image_folder(folder, mask_dir="ground_truth", size=16)
    got = load_image_folder(folder, mask_dir="ground_truth", size=16, store=store)
    assert isinstance(got.images, np.memmap) and not got.images.flags.writeable
    for name in ("images", "masks", "labels", "has_mask", "kinds", "paths"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    decoded = []
    real_open = images._open
    monkeypatch.setattr(images, "_open", lambda path, grey: decoded.append(path) or real_open(path, grey))
    again = load_image_folder(folder, mask_dir="ground_truth", size=16, store=store)
    assert decoded == [] and np.array_equal(again.images, want.images)
    load_image_folder(folder, mask_dir="ground_truth", size=8, store=store)  # other settings
    assert len(decoded) == 6  # 5 images and the one mask
    _save(folder / "good" / "0.png", np.full((40, 30, 3), 7))  # a changed file
    changed = load_image_folder(folder, mask_dir="ground_truth", size=16, store=store)
    assert len(decoded) == 12 and (changed.images[0] == 7).all()
    assert np.array_equal(again.images, want.images)  # a map taken before reads the file before
    (store / images.STORE_INDEX).unlink()  # as a crash before the index is written leaves it
    load_image_folder(folder, mask_dir="ground_truth", size=16, store=store)
    assert len(decoded) == 18
