"""Nearest-neighbour distances on the features of the synthetic-defect segmenter
(``defects``): its patch bank (``DefectsConfig.bank_levels``) scores an image by its patches
farthest from every normal patch, where the segmenter alone scores its map's maximum. This
measures the two side by side on the ``magnetic_tile`` suite's splits, and other banks
(``--levels``: the deepest levels joined; ``--pool``) on the same fitted network.

For each seed: the ``defects`` detector is fitted with its defaults (or loaded from
``--models``, where an earlier run saved it); its ``segmenter`` score and map, its bank score
(``score``) and the upsampled patch map (``patches``) are judged against the labels and masks
(``metrics.defect_metrics``). The banks of ``--levels`` are built from the same network
over all the training images, and scored as the detector scores (``defects.patch_features``,
``bank_distances``, ``position_scale``: the first ``bank_scale`` training images set the
positions' scale; the mean of the ``bank_top`` largest patch scores).

    python experiments/defect_features.py --seeds 0-4 --models /tmp/defects_models

Writes results/magnetic_tile/defect_features.json (and prints a table).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jax_anomaly.data.images import TRAIN_FRACTION, image_split, load_magnetic_tile
from jax_anomaly.detectors import defects
from jax_anomaly.detectors.neighbors import reference_blocks
from jax_anomaly.environment import versions
from jax_anomaly.estimators import estimator_for, load
from jax_anomaly.metrics import defect_metrics


def feature_maps(cfg, params, rows: np.ndarray, batch: int = 32) -> np.ndarray:
    """(N, P, C): ``defects.patch_features`` of ``rows`` (N, D), in batches."""
    features = jax.jit(defects.patch_features(cfg, rows.shape[1]))
    return np.concatenate(
        [np.asarray(features(params, jnp.asarray(rows[s : s + batch]))) for s in range(0, len(rows), batch)]
    )


def bank_params(features: np.ndarray) -> dict:
    """The detector's bank parameters (``defects.bank_distances``) over patch features
    ``(N, P, C)``, their rows in image order (padded: ``neighbors.reference_blocks``)."""
    blocks = reference_blocks(features.reshape(-1, features.shape[-1]))
    return {
        "bank": jnp.asarray(blocks["rows"].reshape(-1, features.shape[-1])),
        "sq": jnp.asarray(blocks["sq"].ravel()),
    }


def patch_scores(cfg, bank: np.ndarray, queries: np.ndarray, chunk: int = 16) -> np.ndarray:
    """``(Nq, P)``: each query patch's distance to the nearest bank patch over its grid
    position's scale, as the detector scores (``defects.bank_distances``,
    ``defects.position_scale``; the bank's first ``cfg.bank_scale`` images are the held ones)."""
    params = bank_params(bank)
    n, p, _ = bank.shape
    held = jnp.asarray(bank[: cfg.bank_scale])
    scale = defects.position_scale(params, held, jnp.asarray(n * p, jnp.int32))
    distances = jax.jit(jax.vmap(defects.bank_distances, in_axes=(None, 0)))
    return np.concatenate(
        [
            np.asarray(distances(params, jnp.asarray(queries[s : s + chunk])) / scale)
            for s in range(0, len(queries), chunk)
        ]
    )


def upsampled(patches: np.ndarray, size: int) -> np.ndarray:
    """(N, P) patch scores on a square grid -> (N, size, size), bilinear."""
    n, p = patches.shape
    side = int(round(np.sqrt(p)))
    grid = jnp.asarray(patches.reshape(n, side, side))
    return np.asarray(jax.image.resize(grid, (n, size, size), "bilinear"))


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
    ap.add_argument("--levels", default="1", help="comma-separated bank_levels of further banks to measure")
    ap.add_argument("--pool", type=int, default=3, help="bank_pool of the further banks")
    ap.add_argument("--models", type=Path, default=None, help="folder to load / save the fitted detectors")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", type=Path, default=Path("results/magnetic_tile/defect_features.json"))
    args = ap.parse_args(argv)
    lo, _, hi = args.seeds.partition("-")
    seeds = list(range(int(lo), int(hi) + 1)) if hi else [int(s) for s in args.seeds.split(",")]
    levels = [int(v) for v in args.levels.split(",") if v]
    rows = []
    for seed in seeds:
        est0 = estimator_for("defects", seed=seed, dataset="magnetic_tile")
        size = est0.model_config().resize_to
        data = load_magnetic_tile(args.data_dir, size=size)
        x = data.images.reshape(len(data), -1).astype(np.float32) / 255.0
        train, test = image_split(data.labels, seed, TRAIN_FRACTION)
        est, fit_s = fitted_segmenter(seed, x[train], args.models)
        cfg, net = est.fitted_.config, est.fitted_.params["net"]
        labels, kinds, masks = data.labels[test], data.kinds[test], data.masks[test]
        t0 = time.perf_counter()
        out = est.score_details(x[test])
        score_s = time.perf_counter() - t0
        seg_map = np.asarray(out["map"]).reshape(len(test), size, size)
        row = {"seed": seed, "fit_seconds": fit_s, "score_seconds": score_s}
        row["segmenter"] = _pct(defect_metrics(labels, kinds, np.asarray(out["segmenter"]), masks, seg_map))
        patch_map = upsampled(np.asarray(out["patches"]), size)
        row["bank"] = {
            **_pct(defect_metrics(labels, kinds, np.asarray(out["score"]), masks, patch_map)),
            "levels": cfg.bank_levels,
            "pool": cfg.bank_pool,
        }
        for lv in levels:
            other = dataclasses.replace(cfg, bank_levels=lv, bank_pool=args.pool)
            t0 = time.perf_counter()
            bank = feature_maps(other, net, x[train])
            queries = feature_maps(other, net, x[test])
            dist = patch_scores(other, bank, queries)
            score = np.sort(dist, axis=1)[:, -other.bank_top :].mean(axis=1)
            metrics = defect_metrics(labels, kinds, score, masks, upsampled(dist, size))
            row[f"levels{lv}"] = {
                **_pct(metrics),
                "bank": int(bank.shape[0] * bank.shape[1]),
                "seconds": time.perf_counter() - t0,
            }
        for name in ["bank", *(f"levels{lv}" for lv in levels)]:
            print(
                f"seed {seed} {name:>8} image {row[name]['image_auroc']:.1f} (segmenter "
                f"{row['segmenter']['image_auroc']:.1f}) pixel {row[name]['pixel_auroc']:.1f} "
                f"({row['segmenter']['pixel_auroc']:.1f}) pro {row[name]['pro']:.1f} "
                f"({row['segmenter']['pro']:.1f})",
                flush=True,
            )
        rows.append(row)
        write(args, rows, ["segmenter", "bank", *(f"levels{lv}" for lv in levels)])


def write(args, rows: list[dict], specs: list[str]) -> None:
    """The JSON of the seeds measured so far, with their means (and the printed means)."""
    seeds = [r["seed"] for r in rows]
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
        "levels": args.levels,
        "seeds": seeds,
        "rows": rows,
        "mean": summary,
    }
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
