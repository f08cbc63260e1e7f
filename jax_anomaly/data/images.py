"""Photographs in folders as NumPy arrays: anomalib's Folder layout (``folder:PATH``) and the
magnetic tile defect set (``magnetic_tile``), each image resized or cropped to one size, grey
or RGB, with its defect mask where there is one. JPEG/PNG/BMP through Pillow."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from jax_anomaly.data.roots import find_in_roots
from jax_anomaly.persistence import new_npy
from jax_anomaly.training.progress import Progress

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
RESIZE_MODES = ("resize", "crop")
MAGNETIC_TILE_FOLDER = "magnetic_tile"
MAGNETIC_TILE_NORMAL = "MT_Free"
# Side of the square images by default, and the seeded share of the normal images that
# trains (the rest and every defective image test): the data sets and the suite take these.
IMAGE_SIZE = 64
TRAIN_FRACTION = 0.8


@dataclasses.dataclass(frozen=True)
class ImageSet:
    """Images of one size with labels and masks.

    Attributes:
      name: the set's name.
      images: (N, H, W, C) uint8, C = 1 (grey) or 3 (RGB).
      labels: (N,) 0 normal, 1 defective.
      masks: (N, H, W) bool defect masks (all False for normal images and for defective ones
        without a mask file); ``has_mask`` (N,) says which defective ones had one.
      kinds: (N,) the folder (defect kind) of each image; normal images have the normal
        folder's name.
      paths: (N,) source files.
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    has_mask: np.ndarray
    kinds: np.ndarray
    paths: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def _open(path: Path, grey: bool):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("L" if grey else "RGB")
    except (OSError, UnidentifiedImageError) as e:
        raise ValueError(f"cannot read image {path} (corrupt or not an image): {e}") from e


def _fit(im, size: int, mode: str, nearest: bool):
    """``im`` as ``size`` x ``size``: the whole image resized, or its centre square cropped
    (then resized only where it is smaller than ``size``)."""
    from PIL import Image

    resample = Image.NEAREST if nearest else Image.BILINEAR
    if mode == "crop":
        w, h = im.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        im = im.crop((left, top, left + side, top + side))
        if side > size:
            left = top = (side - size) // 2
            return im.crop((left, top, left + size, top + size))
    return im.resize((size, size), resample)


def _image_files(folder: Path) -> list[Path]:
    """Images in ``folder`` (or in its ``Imgs`` subfolder, the magnetic tile layout), without
    the PNG masks that sit beside JPEG images of the same name."""
    if (folder / "Imgs").is_dir():
        folder = folder / "Imgs"
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    stems_jpg = {p.stem for p in files if p.suffix.lower() in (".jpg", ".jpeg")}
    return [p for p in files if not (p.suffix.lower() == ".png" and p.stem in stems_jpg)]


def _mask_file(image: Path, kind: str, mask_root: Path | None) -> Path | None:
    if mask_root is not None:
        for stem in (image.stem, f"{image.stem}_mask"):
            candidate = mask_root / kind / f"{stem}.png"
            if candidate.is_file():
                return candidate
        return None
    beside = image.with_suffix(".png")
    return beside if image.suffix.lower() != ".png" and beside.is_file() else None


def load_image_folder(
    root: str | Path,
    *,
    normal: str = "good",
    abnormal: tuple[str, ...] | None = None,
    mask_dir: str | None = None,
    size: int = IMAGE_SIZE,
    mode: str = "resize",
    grey: bool = True,
    name: str | None = None,
    store: str | Path | None = None,
    progress: bool = False,
) -> ImageSet:
    """Loads anomalib's Folder layout: ``root/<normal>/`` holds the defect-free images, each
    other folder (or those named in ``abnormal``) one kind of defective ones; a defective
    image's mask is ``root/<mask_dir>/<kind>/<stem>[_mask].png`` or, without ``mask_dir``, a PNG
    of the same name beside a JPEG image. White (non-zero) mask pixels are defects.

    ``store``: a folder to decode the images and masks into (``.npy`` files, returned as
    read-only memory maps: a set larger than memory), reused while the files and settings are
    the same. None: decoded into memory. ``progress``: a progress line while decoding into the
    store.

    Raises:
      FileNotFoundError: no such folder, or no normal / defective images in it.
      ValueError: bad options, or an image or mask that cannot be read.
    """
    root = Path(root)
    if mode not in RESIZE_MODES:
        raise ValueError(f"mode must be one of {RESIZE_MODES}, got '{mode}'")
    if size < 2:
        raise ValueError(f"size must be >= 2, got {size}")
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    if not (root / normal).is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise FileNotFoundError(f"{root} has no normal-image folder '{normal}'; folders: {found}")
    kinds = (
        list(abnormal)
        if abnormal
        else sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in (normal, mask_dir))
    )
    for kind in kinds:
        if not (root / kind).is_dir():
            raise FileNotFoundError(f"defect folder {root / kind} does not exist")
    mask_root = root / mask_dir if mask_dir else None
    listing = []  # (kind, image file, mask file or None)
    for kind in [normal, *kinds]:
        files = _image_files(root / kind)
        if not files:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {root / kind}")
        for path in files:
            mfile = _mask_file(path, kind, mask_root) if kind != normal else None
            listing.append((kind, path, mfile))
    labels = np.asarray([int(kind != normal) for kind, _, _ in listing], np.int64)
    if not labels.any():
        raise FileNotFoundError(f"no defective images in {root} (folders other than '{normal}')")
    channels = 1 if grey else 3

    def decode(i):
        _, path, mfile = listing[i]
        im = _fit(_open(path, grey), size, mode, nearest=False)
        image = np.asarray(im, np.uint8).reshape(size, size, channels)
        mask = np.zeros((size, size), bool)
        if mfile is not None:
            mask = np.asarray(_fit(_open(mfile, True), size, mode, nearest=True)) > 127
        return image, mask

    shapes = ((len(listing), size, size, channels), (len(listing), size, size))
    if store is None:
        decoded = [decode(i) for i in range(len(listing))]
        images, masks = (np.stack([d[j] for d in decoded]) for j in (0, 1))
    else:
        images, masks = _stored(Path(store), listing, shapes, (size, mode, grey), decode, progress)
    return ImageSet(
        name=name or f"folder:{root}",
        images=images,
        labels=labels,
        masks=masks,
        has_mask=np.asarray([m is not None for _, _, m in listing]),
        kinds=np.asarray([kind for kind, _, _ in listing]),
        paths=np.asarray([str(path) for _, path, _ in listing]),
    )


STORE_INDEX = "index.json"


def _stored(store: Path, listing, shapes, settings, decode, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """The images and masks as read-only memory maps ``store/images.npy``, ``store/masks.npy``:
    decoded one image at a time (never all in memory) where the store does not already hold
    this listing (each file's path, size and modification time) at these settings. The index
    is written last, so a store cut short by a crash is decoded again, not read."""
    files = [(str(p), str(m) if m else None) for _, p, m in listing]
    stamp = [[p.stat().st_size, p.stat().st_mtime_ns] for _, p, _ in listing]
    index = json.loads(json.dumps({"files": files, "stamps": stamp, "settings": settings}))
    names = (store / "images.npy", store / "masks.npy")
    try:
        if json.loads((store / STORE_INDEX).read_text()) == index:
            return tuple(np.load(f, mmap_mode="r") for f in names)
    except (OSError, ValueError):
        pass  # no store yet, or another one: decode
    store.mkdir(parents=True, exist_ok=True)
    (store / STORE_INDEX).unlink(missing_ok=True)
    bar = Progress(len(listing), f"decode into {store}", unit="images", enabled=progress)
    with new_npy(names[0], np.uint8, shapes[0]) as images, new_npy(names[1], bool, shapes[1]) as masks:
        for i in range(len(listing)):
            images[i], masks[i] = decode(i)
            bar.update(i + 1)
    bar.close()
    (store / STORE_INDEX).write_text(json.dumps(index))
    return tuple(np.load(f, mmap_mode="r") for f in names)


def load_magnetic_tile(
    data_dir: str | None = None,
    *,
    size: int = IMAGE_SIZE,
    mode: str = "resize",
    grey: bool = True,
    store: str | Path | None = None,
    progress: bool = False,
) -> ImageSet:
    """The magnetic tile defect photographs (Huang et al. 2018): ``MT_Free`` normal, the other
    ``MT_*`` folders defect kinds, masks beside the images; grey (``grey=False``: as RGB).
    ``store``, ``progress``: as ``load_image_folder``.

    Raises:
      FileNotFoundError: the folder is in no data root.
    """
    folder = find_in_roots(
        Path(MAGNETIC_TILE_FOLDER) / MAGNETIC_TILE_NORMAL,
        data_dir,
        what="magnetic tile set",
        how=f"Put the MT_* folders in <root>/{MAGNETIC_TILE_FOLDER}/",
    ).parent
    return load_image_folder(
        folder,
        normal=MAGNETIC_TILE_NORMAL,
        size=size,
        mode=mode,
        grey=grey,
        name="magnetic_tile",
        store=store,
        progress=progress,
    )


def image_split(labels: np.ndarray, seed: int, train_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """``(train rows, test rows)``: a seeded ``train_fraction`` of the normal images to train
    on (rounded down: 761 of the 952 tiles), the other normal and every defective image to test."""
    normal = np.flatnonzero(labels == 0)
    perm = np.random.default_rng(seed).permutation(normal)
    n_train = int(train_fraction * len(normal))
    train = np.sort(perm[:n_train])
    test = np.sort(np.r_[perm[n_train:], np.flatnonzero(labels == 1)])
    return train, test
