"""Nearest-neighbour distances on the features of the synthetic-defect segmenter
(``defects``): does the network that learned to find pasted defects also describe normal
texture well enough that a test patch far from every training patch is a defect?

For each seed of the ``magnetic_tile`` suite's split: the ``defects`` detector is fitted with
its defaults (or loaded from ``--models``, where an earlier run saved it), then every
training photograph's feature maps at ``--layers`` (ReLU outputs of the U-Net's layers; ``a+b``
joins b upsampled to a's grid), averaged over ``--pool`` x ``--pool`` neighbours, make the
bank; a test patch scores its distance to the nearest bank patch
(``detectors.neighbors``, blocked matrix products), an image its highest patch, and the
upsampled patch map is judged against the masks. The segmenter's own map and score are
measured beside on the same split.

    python experiments/defect_features.py --seeds 0-4 --models /tmp/defects_models

Writes results/magnetic_tile/defect_features.json (and prints a table).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jax_anomaly.data.images import TRAIN_FRACTION, image_split, load_magnetic_tile
from jax_anomaly.detectors.defects import build_model
from jax_anomaly.detectors.neighbors import nearest_distances, reference_blocks
from jax_anomaly.environment import versions
from jax_anomaly.estimators import estimator_for, load
from jax_anomaly.image_scores import split_scale
from jax_anomaly.suites.images import image_metrics


def feature_maps(model, params, rows: np.ndarray, spec: str, pool: int, batch: int = 32) -> np.ndarray:
    """(N, h, w, C) feature maps of ``rows`` (N, D): the ReLU outputs of the layers named in
    ``spec`` (``a+b``: b resized to a's grid and joined on the channels), box-averaged over
    ``pool`` x ``pool``."""
    names = spec.split("+")

    @jax.jit
    def one_batch(xb):
        _, state = model.apply({"params": params}, xb, capture_intermediates=True)
        inter = state["intermediates"]
        maps = [nn.relu(inter[n]["__call__"][0]) for n in names]
        grid = maps[0].shape[1:3]
        maps = [maps[0]] + [
            jax.image.resize(m, (m.shape[0], *grid, m.shape[3]), "bilinear") for m in maps[1:]
        ]
        out = jnp.concatenate(maps, -1)
        if pool > 1:
            out = nn.avg_pool(out, (pool, pool), padding="SAME", count_include_pad=False)
        return out

    return np.concatenate(
        [np.asarray(one_batch(jnp.asarray(rows[s : s + batch]))) for s in range(0, len(rows), batch)]
    )


def patch_distances(bank: np.ndarray, queries: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Each query row's distance to its nearest bank row (exact, blocked)."""
    blocks = {k: jnp.asarray(v) for k, v in reference_blocks(bank).items()}
    nearest = jax.jit(jax.vmap(lambda q: nearest_distances(blocks, q, 1)[0]))
    return np.concatenate(
        [np.asarray(nearest(jnp.asarray(queries[s : s + chunk]))) for s in range(0, len(queries), chunk)]
    )


def fitted_segmenter(seed: int, x: np.ndarray, models: Path | None):
    """The ``defects`` estimator for ``seed``: loaded from ``models`` where saved, else fitted
    (and saved there)."""
    path = models / f"defects_seed{seed}" if models else None
    if path is not None and path.exists():
        return load(path), 0.0
    t0 = time.perf_counter()
    est = estimator_for("defects", seed=seed, dataset="magnetic_tile").fit(x)
    took = time.perf_counter() - t0
    if path is not None:
        est.save(path)
    return est, took


def _pct(metrics: dict) -> dict:
    return {
        k: (round(100 * v, 2) if isinstance(v, float) else {kk: round(100 * vv, 2) for kk, vv in v.items()})
        for k, v in metrics.items()
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--layers", default="down_2b+down_3b", help="comma-separated specs, each a or a+b")
    ap.add_argument("--pool", type=int, default=3)
    ap.add_argument("--models", type=Path, default=None, help="folder to load / save the fitted segmenters")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", type=Path, default=Path("results/magnetic_tile/defect_features.json"))
    args = ap.parse_args(argv)
    lo, _, hi = args.seeds.partition("-")
    seeds = list(range(int(lo), int(hi) + 1)) if hi else [int(s) for s in args.seeds.split(",")]
    rows = []
    for seed in seeds:
        est0 = estimator_for("defects", seed=seed, dataset="magnetic_tile")
        size = est0.model_config().resize_to
        data = load_magnetic_tile(args.data_dir, size=size)
        x = data.images.reshape(len(data), -1).astype(np.float32) / 255.0
        train, test = image_split(data.labels, seed, TRAIN_FRACTION)
        est, fit_s = fitted_segmenter(seed, x[train], args.models)
        params, _ = split_scale(est.fitted_.params)
        model = build_model(est.fitted_.config, x.shape[1])
        labels, kinds, masks = data.labels[test], data.kinds[test], data.masks[test]
        t0 = time.perf_counter()
        seg = est.score_details(x[test])
        seg_s = time.perf_counter() - t0
        seg_maps = np.asarray(seg["map"]).reshape(len(test), size, size)
        row = {
            "seed": seed,
            "fit_seconds": fit_s,
            "segmenter": {
                **_pct(image_metrics(labels, kinds, np.asarray(seg["score"]), masks, seg_maps)),
                "seconds": seg_s,
            },
        }
        for spec in args.layers.split(","):
            t0 = time.perf_counter()
            bank = feature_maps(model, params, x[train], spec, args.pool)
            queries = feature_maps(model, params, x[test], spec, args.pool)
            n, h, w, c = queries.shape
            dist = patch_distances(bank.reshape(-1, c), queries.reshape(-1, c)).reshape(n, h, w)
            maps = np.asarray(jax.image.resize(jnp.asarray(dist), (n, size, size), "bilinear"))
            took = time.perf_counter() - t0
            metrics = image_metrics(labels, kinds, dist.reshape(n, -1).max(1), masks, maps)
            row[spec] = {
                **_pct(metrics),
                "grid": [h, w],
                "channels": c,
                "bank": int(bank.shape[0] * h * w),
                "seconds": took,
            }
            print(
                f"seed {seed} {spec:>16} image {row[spec]['image_auroc']:.1f} (segmenter "
                f"{row['segmenter']['image_auroc']:.1f}) pixel {row[spec]['pixel_auroc']:.1f} "
                f"({row['segmenter']['pixel_auroc']:.1f}) pro {row[spec]['pro']:.1f} "
                f"({row['segmenter']['pro']:.1f}) {took:.0f}s",
                flush=True,
            )
        rows.append(row)
        write(args, rows)  # after every seed: an interrupted run keeps what it measured


def write(args, rows: list[dict]) -> None:
    """The JSON of the seeds measured so far, with their means (and the printed means)."""
    seeds = [r["seed"] for r in rows]
    specs = ["segmenter", *args.layers.split(",")]
    summary = {
        s: {m: float(np.mean([r[s][m] for r in rows])) for m in ("image_auroc", "pixel_auroc", "pro")}
        for s in specs
    }
    for s in specs:
        print(f"mean over seeds {seeds}: {s:>16} " + " ".join(f"{m} {v:.1f}" for m, v in summary[s].items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "experiment": "defect_features",
        "versions": versions(),
        "pool": args.pool,
        "seeds": seeds,
        "rows": rows,
        "mean": summary,
    }
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
