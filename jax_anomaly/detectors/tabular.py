"""The default tabular detector: a fixed ensemble of distance and isolation scores, chosen on
ADBench's 37 classical sets in both of DTE's protocols (``experiments/tabular_search.py``,
``docs/results.md``).

Members, each a JAX function of one sample, on features standardised by the training rows:

- ``near``: distance to the nearest training row (exact kNN, blocked matrix products);
- ``far``: mean distance to the ``k_far`` nearest training rows;
- ``bags``: nearest-neighbour distance within ``bags`` random subsamples of ``bag_rows`` rows,
  averaged (LeSiNN, Pang et al. 2015; Aggarwal and Sathe's subsampled kNN ensembles);
- ``iforest``: an Isolation Forest (scikit-learn grows the trees, JAX walks them).

Small-neighbourhood distances are the most precise on clean training data; subsampled and
isolation scores are the robust ones when anomalies contaminate the training rows (a
contaminating anomaly is rarely in a small subsample). Each member's score is put on a common
scale by the median and inter-quartile range of its scores on the training rows, each row
scored without itself (leave one out), and the score is the weighted mean of these robust
z-scores. The fit is closed form: no training steps, deterministic for a seed.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jax_anomaly.detectors.base import Detector, register
from jax_anomaly.detectors.baselines import IForestConfig, iforest_fit, iforest_score
from jax_anomaly.detectors.neighbors import BLOCK_ROWS, nearest_distances, reference_blocks

MEMBERS = ("near", "far", "bags", "iforest")
CALIBRATION_CHUNK = 1024


@dataclasses.dataclass(frozen=True)
class TabularConfig:
    """The default tabular detector (a fixed ensemble; see ``jax_anomaly.detectors.tabular``).

    Attributes:
      k_far: neighbours of the ``far`` member (mean distance to the k_far nearest).
      bags: random subsamples of the ``bags`` member.
      bag_rows: training rows in each subsample.
      trees: Isolation Forest trees.
      tree_rows: rows drawn for each tree.
      weights: weights of the members near, far, bags, iforest (>= 0, not all 0).
      max_reference_rows: the kNN members keep at most this many training rows (a seeded
        subsample beyond it), so fitting and scoring stay linear in the rows.
      calibration_rows: training rows (a seeded subsample beyond it) scored, each without
        itself, for each member's median and inter-quartile range.
    """

    k_far: int = 50
    bags: int = 64
    bag_rows: int = 64
    trees: int = 100
    tree_rows: int = 256
    weights: tuple[float, ...] = (1.0, 1.0, 2.0, 2.0)
    max_reference_rows: int = 20_000
    calibration_rows: int = 10_000

    def __post_init__(self):
        for name in ("k_far", "bags", "bag_rows", "trees", "max_reference_rows", "calibration_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.tree_rows < 2:
            raise ValueError(f"tree_rows must be >= 2, got {self.tree_rows}")
        w = tuple(self.weights)
        if len(w) != len(MEMBERS) or min(w) < 0 or sum(w) <= 0:
            raise ValueError(
                f"weights: {len(MEMBERS)} values >= 0 ({', '.join(MEMBERS)}), not all 0; got {w}"
            )
        object.__setattr__(self, "weights", tuple(float(v) for v in w))


def _members(params: dict, x: jax.Array, own: jax.Array, k_far: int) -> jax.Array:
    """The four raw member scores (4,) of ONE standardised sample ``x``. ``own``: the sample's
    row index in the training data when it is a training row (left out of every neighbour
    set), else -1."""
    refs = params["refs"]
    # the nearest k_far + 1 references; a training row drops its own entry (distance 0)
    d = nearest_distances(refs, x, k_far + 1)
    is_ref = jnp.any(params["ref_index"] == own)
    d = jnp.where(is_ref, d[1:], d[:-1])
    found = jnp.isfinite(d)
    near = jnp.where(found[0], d[0], 0.0)
    far = jnp.sum(jnp.where(found, d, 0.0)) / jnp.maximum(jnp.sum(found), 1)
    bags = params["bags"]  # one block per subsample: rows (B, P, D), squared norms (B, P)
    d2 = bags["sq"] - 2.0 * (bags["rows"] @ x) + jnp.dot(x, x)
    d2 = jnp.where(params["bag_index"] == own, jnp.inf, jnp.maximum(d2, 0.0))
    bags = jnp.mean(jnp.sqrt(jnp.min(d2, axis=1)))
    return jnp.stack([near, far, bags, iforest_score(params["forest"], x)])


def tabular_fit(cfg: TabularConfig, x_train: np.ndarray, key) -> dict:
    x = np.asarray(x_train, np.float32)
    n, d = x.shape
    if n < 2:
        raise ValueError(f"the tabular detector needs at least 2 training rows, got {n} sample(s)")
    mean = x.mean(0)
    std = x.std(0)
    scale = np.where(std > 1e-12 * np.maximum(np.abs(mean), 1.0), std, 1.0).astype(np.float32)  # constant: 1
    xs = ((x - mean) / scale).astype(np.float32)
    k_ref, k_bag, k_forest, k_cal = jax.random.split(key, 4)
    ref_index = np.arange(n)
    if n > cfg.max_reference_rows:
        ref_index = np.sort(np.asarray(jax.random.choice(k_ref, n, (cfg.max_reference_rows,), replace=False)))
    p = min(cfg.bag_rows, n - 1)
    bag_index = np.asarray(
        jax.vmap(lambda k: jax.random.choice(k, n, (p,), replace=False))(jax.random.split(k_bag, cfg.bags))
    )
    params = {
        "mean": mean,
        "scale": scale,
        "refs": reference_blocks(xs[ref_index], BLOCK_ROWS),
        "ref_index": ref_index.astype(np.int32),
        "bags": reference_blocks(xs[bag_index.reshape(-1)], p),
        "bag_index": bag_index.astype(np.int32),
        "forest": iforest_fit(IForestConfig(cfg.trees, cfg.tree_rows), xs, k_forest),
    }
    cal = np.arange(n)
    if n > cfg.calibration_rows:
        cal = np.asarray(jax.random.choice(k_cal, n, (cfg.calibration_rows,), replace=False))
    members = jax.jit(jax.vmap(lambda xi, i: _members(params, xi, i, cfg.k_far)))
    raw = np.concatenate(
        [
            np.asarray(
                members(
                    jnp.asarray(xs[cal[i : i + CALIBRATION_CHUNK]]),
                    jnp.asarray(cal[i : i + CALIBRATION_CHUNK]),
                )
            )
            for i in range(0, len(cal), CALIBRATION_CHUNK)
        ]
    )
    params["centre"], params["spread"] = robust_scale(raw)
    return params


def robust_scale(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(median, inter-quartile range)`` of each column of ``raw`` (N, M), float32; a spread
    of zero is floored at 1e-6 of the median's size (at least 1e-6)."""
    q1, median, q3 = np.percentile(raw, [25, 50, 75], axis=0)
    spread = np.maximum(q3 - q1, 1e-6 * np.maximum(np.abs(median), 1.0))
    return median.astype(np.float32), spread.astype(np.float32)


def tabular_scorer(cfg: TabularConfig, n_features: int):
    weights = jnp.asarray(cfg.weights, jnp.float32) / sum(cfg.weights)

    def one(params, x):
        xs = (x - params["mean"]) / params["scale"]
        z = (_members(params, xs, jnp.int32(-1), cfg.k_far) - params["centre"]) / params["spread"]
        return {"score": jnp.dot(weights, z), "members": z}

    return one


TABULAR = register(
    Detector(
        name="tabular",
        description="default tabular detector: kNN, subsampled kNN and Isolation Forest, standardised",
        config_cls=TabularConfig,
        presets={
            "default": TabularConfig(),
            "tiny": TabularConfig(k_far=5, bags=8, bag_rows=16, trees=20, tree_rows=64),
        },
        phases=(),
        make_sample_scorer=tabular_scorer,
        fit_params=tabular_fit,
        estimator="TabularDetector",
        score_chunk=lambda cfg, local_n: 1024,
    )
)
