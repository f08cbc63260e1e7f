"""The ``magnetic_tile`` suite: train on a seeded share of the defect-free photographs, test on
the rest and every defective one; image AUROC (overall and per defect kind) and, for detectors
with anomaly maps, pixel AUROC and PRO against the masks."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from jax_anomaly.data.images import IMAGE_SIZE, TRAIN_FRACTION, image_split, load_magnetic_tile
from jax_anomaly.estimators import estimator_for
from jax_anomaly.metrics import defect_metrics, ranking_metrics
from jax_anomaly.suites.tables import Published, read_published_overall

DETECTORS = ("knn", "ae", "defects")
SEEDS = (0, 1, 2, 3, 4)
# size None: the side each detector resizes photographs to (its config's resize_to), else 64.
# figures: where run_suite puts the anomaly-map figures (a location, like data_dir); models:
# a folder to save each cell's fitted estimator in (``<detector>_seed<seed>``; None: none), to
# score again in other ways without training (``ja.load``).
OPTIONS = {
    "data_dir": None,
    "figures": None,
    "models": None,
    "size": None,
    "train_fraction": TRAIN_FRACTION,
    "estimator": {},
}
# Test images per defect kind (and normal ones) in each anomaly-map figure.
FIGURE_IMAGES = 2


def sets(options: dict) -> list[str]:
    return ["magnetic_tile"]


@functools.lru_cache(maxsize=2)
def _images(data_dir, size):
    return load_magnetic_tile(data_dir, size=size)


def run_group(detector: str, name: str, seeds: list[int], options: dict) -> dict:
    """``{seed: metrics}`` of ``detector`` (its estimator's defaults) on grey ``size`` x
    ``size`` tiles scaled to [0, 1], one row per image."""
    params = {"dataset": "magnetic_tile", **(options.get("estimator") or {})}
    size = options.get("size") or getattr(
        estimator_for(detector, **params).model_config(), "resize_to", IMAGE_SIZE
    )
    data = _images(options.get("data_dir"), size)
    x = data.images.reshape(len(data), -1).astype(np.float32) / 255.0
    out = {}
    for seed in seeds:
        train, test = image_split(data.labels, seed, options["train_fraction"])
        est = estimator_for(detector, seed=seed, **params).fit(x[train])
        if options.get("models"):
            est.save(Path(options["models"]) / f"{detector}_seed{seed}")
        details = est.score_details(x[test])
        maps = details.get("map")
        if maps is not None:
            maps = np.asarray(maps).reshape(len(test), size, size)
            figures = Path(options["figures"]) if options.get("figures") else None
            drawn = list(figures.glob(f"{detector}_seed*.png")) if figures else []
            # one a detector: the first seed's, redrawn when that seed's cell is computed again
            if figures and (not drawn or figures / f"{detector}_seed{seed}.png" in drawn):
                write_map_figure(
                    figures / f"{detector}_seed{seed}.png",
                    data,
                    test,
                    np.asarray(details["score"]),
                    maps,
                    seed,
                )
        out[seed] = {
            **defect_metrics(
                data.labels[test],
                data.kinds[test],
                np.asarray(details["score"]),
                data.masks[test],
                maps,
            ),
            # the image AUROC of each other image-level part (defects: its segmenter's score)
            "part_auroc": {
                k: ranking_metrics(data.labels[test], np.asarray(v, np.float64))["auroc"]
                for k, v in details.items()
                if k != "score" and np.shape(v) == (len(test),)
            },
            "n_train": len(train),
            "n_test": len(test),
            "size": size,
        }
    return out


def write_map_figure(path, data, test, scores, maps, seed: int) -> None:
    """``FIGURE_IMAGES`` seeded test photographs of each kind, normal first, with their
    anomaly maps and mask outlines (``plotting.plot_defect_maps``)."""
    from jax_anomaly import plotting

    rng = np.random.default_rng(seed)
    kinds = data.kinds[test]
    order = sorted(np.unique(kinds), key=lambda k: (k != kinds[data.labels[test] == 0][0], k))
    pick = np.concatenate(
        [
            rng.choice(np.flatnonzero(kinds == k), min(FIGURE_IMAGES, int(np.sum(kinds == k))), replace=False)
            for k in order
        ]
    )
    titles = [f"{kinds[i].removeprefix('MT_')} {scores[i]:.3g}" for i in pick]
    path.parent.mkdir(parents=True, exist_ok=True)
    plotting.plot_defect_maps(
        path, data.images[test][pick, ..., 0], maps[pick], data.masks[test][pick], titles
    )


def published(options: dict) -> Published:
    return Published(
        per_set={},
        overall=read_published_overall("magnetic_tile"),
        source="DifferNet (Rudolph et al., WACV 2021), Table 2",
        note="published: image AUROC; their split of the defect-free images may differ from ours "
        f"(a seeded {options['train_fraction']:.0%} to train, tiles resized to grey squares of "
        f"{options['size'] or 'each detector'}'s side).",
    )
