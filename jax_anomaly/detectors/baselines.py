"""The simple baselines every deep result is judged beside, as registered detectors fitted in
closed form: kNN distance, Isolation Forest, PCA reconstruction and ECOD. Their scores are
JAX functions of one sample, so they are vmapped, chunked, sharded and saved like any
detector's; kNN is blocked matrix products (``neighbors``), the Isolation Forest's trees are
grown by scikit-learn and walked in JAX."""

from __future__ import annotations

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import skew
from sklearn.ensemble import IsolationForest

from jax_anomaly.detectors.base import Detector, register
from jax_anomaly.detectors.neighbors import BLOCK_ROWS, nearest_distances, reference_blocks

KNN_AGGREGATES = ("largest", "mean")


def _seed(key) -> int:
    """An integer seed for a NumPy/scikit-learn fit, from a JAX key."""
    return int(jax.random.randint(key, (), 0, 2**31 - 1))


# ---- kNN -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class KNNConfig:
    """k-nearest-neighbour distance (PyOD's KNN).

    Attributes:
      k: neighbours; the score is the distance to the k-th nearest training row (fewer
        training rows than k: to the farthest).
      aggregate: ``largest`` (distance to the k-th neighbour, PyOD's default) or ``mean``
        (mean distance to the k nearest).
      block_rows: training rows per block of the blocked distance computation.
    """

    k: int = 5
    aggregate: str = "largest"
    block_rows: int = BLOCK_ROWS

    def __post_init__(self):
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.aggregate not in KNN_AGGREGATES:
            raise ValueError(f"aggregate must be one of {KNN_AGGREGATES}, got '{self.aggregate}'")
        if self.block_rows < 1:
            raise ValueError(f"block_rows must be >= 1, got {self.block_rows}")


def knn_fit(cfg: KNNConfig, x_train: np.ndarray, key) -> dict:
    del key  # deterministic
    return reference_blocks(x_train, cfg.block_rows)


def knn_scorer(cfg: KNNConfig, n_features: int):
    def one(params, x):
        dist = nearest_distances(params, x, cfg.k)  # ascending; +inf past the training rows
        found = jnp.isfinite(dist)
        if cfg.aggregate == "largest":
            score = jnp.max(jnp.where(found, dist, -jnp.inf))
        else:
            score = jnp.sum(jnp.where(found, dist, 0.0)) / jnp.maximum(jnp.sum(found), 1)
        return {"score": score}

    return one


# ---- Isolation Forest ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class IForestConfig:
    """Isolation Forest (scikit-learn's trees, walked in JAX).

    Attributes:
      n_estimators: trees.
      max_samples: rows drawn for each tree (fewer training rows: all of them).
    """

    n_estimators: int = 100
    max_samples: int = 256

    def __post_init__(self):
        if self.n_estimators < 1 or self.max_samples < 2:
            raise ValueError(
                f"need n_estimators >= 1 and max_samples >= 2, got {self.n_estimators}, {self.max_samples}"
            )


def average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): the mean path length of an unsuccessful search in a binary search tree of n rows
    (Liu et al. 2008), as scikit-learn computes it."""
    n = np.asarray(n, np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def iforest_fit(cfg: IForestConfig, x_train: np.ndarray, key) -> dict:
    """Grows the forest with scikit-learn and packs each tree as arrays of its nodes (padded
    to the largest tree): feature, threshold, children, and at a leaf the path length
    scikit-learn adds there (its depth + c(rows in the leaf))."""
    forest = IsolationForest(
        n_estimators=cfg.n_estimators, max_samples=min(cfg.max_samples, len(x_train)), random_state=_seed(key)
    ).fit(x_train)
    trees = [t.tree_ for t in forest.estimators_]
    nodes = max(t.node_count for t in trees)
    depth = max(int(t.max_depth) for t in trees)
    t_count = len(trees)
    feature = np.zeros((t_count, nodes), np.int32)
    threshold = np.zeros((t_count, nodes), np.float32)
    left = np.tile(np.arange(nodes, dtype=np.int32), (t_count, 1))  # padding and leaves: stay
    right = left.copy()
    leaf_value = np.zeros((t_count, nodes), np.float32)
    subsample = forest._max_features != x_train.shape[1]
    for i, (t, features) in enumerate(zip(trees, forest.estimators_features_, strict=True)):
        n = t.node_count
        is_leaf = t.children_left == -1
        f = np.where(is_leaf, 0, t.feature)
        feature[i, :n] = features[f] if subsample else f
        threshold[i, :n] = t.threshold
        left[i, :n] = np.where(is_leaf, np.arange(n), t.children_left)
        right[i, :n] = np.where(is_leaf, np.arange(n), t.children_right)
        node_depth = np.zeros(n, np.float64)
        for parent in range(n):  # children always come after their parent
            if not is_leaf[parent]:
                node_depth[t.children_left[parent]] = node_depth[t.children_right[parent]] = (
                    node_depth[parent] + 1
                )
        leaf_value[i, :n] = np.where(is_leaf, node_depth + average_path_length(t.n_node_samples), 0.0)
    return {
        "feature": feature,
        "threshold": threshold,
        "left": left,
        "right": right,
        "leaf_value": leaf_value,
        "steps": np.zeros(depth, np.int8),  # its length is the deepest tree's depth (a static shape)
        "norm": np.float32(average_path_length(np.array([forest.max_samples_]))[0] * t_count),
    }


def iforest_score(params: dict, x: jax.Array) -> jax.Array:
    """The Isolation Forest score of ONE sample (scikit-learn's ``-score_samples``): 2 to the
    minus the mean path length over the forest ``params`` (``iforest_fit``), normalised."""

    def walk(tree):
        feature, threshold, left, right, leaf_value = tree

        def step(node, _):
            go_left = x[feature[node]] <= threshold[node]
            return jnp.where(go_left, left[node], right[node]), None

        node, _ = jax.lax.scan(step, jnp.int32(0), params["steps"])
        return leaf_value[node]

    keys = ("feature", "threshold", "left", "right", "leaf_value")
    depths = jax.vmap(walk)(tuple(params[k] for k in keys))
    return jnp.exp2(-jnp.sum(depths) / params["norm"])


def iforest_scorer(cfg: IForestConfig, n_features: int):
    def one(params, x):
        return {"score": iforest_score(params, x)}

    return one


# ---- PCA reconstruction --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PCAConfig:
    """Reconstruction error from the principal components of the training rows.

    Attributes:
      variance: keep the fewest components that explain this share of the training
        variance (in (0, 1]).
    """

    variance: float = 0.9

    def __post_init__(self):
        if not 0 < self.variance <= 1:
            raise ValueError(f"variance must be in (0, 1], got {self.variance}")


def pca_fit(cfg: PCAConfig, x_train: np.ndarray, key) -> dict:
    del key
    x = np.asarray(x_train, np.float64)
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    explained = np.cumsum(s**2) / max(np.sum(s**2), np.finfo(np.float64).tiny)
    n = int(np.searchsorted(explained, cfg.variance - 1e-12) + 1)
    return {"mean": mean.astype(np.float32), "components": vt[: min(n, len(vt))].astype(np.float32)}


def pca_scorer(cfg: PCAConfig, n_features: int):
    def one(params, x):
        centred = x - params["mean"]
        recon = params["components"].T @ (params["components"] @ centred)
        return {"score": jnp.sum((centred - recon) ** 2)}

    return one


# ---- ECOD ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ECODConfig:
    """ECOD (Li et al. 2022): tail probabilities of each feature's empirical distribution.

    Attributes:
      tails: ``auto`` (ECOD: the largest of the left-tail, right-tail and skewness-chosen
        sums), ``left``, ``right`` or ``both`` (the larger of left and right per feature).
    """

    tails: str = "auto"

    def __post_init__(self):
        if self.tails not in ("auto", "left", "right", "both"):
            raise ValueError(f"tails must be auto, left, right or both, got '{self.tails}'")


def ecod_fit(cfg: ECODConfig, x_train: np.ndarray, key) -> dict:
    del key
    x = np.asarray(x_train, np.float32)
    with np.errstate(all="ignore"), warnings.catch_warnings():  # constant columns: skew undefined
        warnings.simplefilter("ignore", RuntimeWarning)
        s = np.nan_to_num(skew(x.astype(np.float64), axis=0), nan=0.0)
    return {"sorted": np.sort(x, axis=0).T.copy(), "skew_sign": np.sign(s).astype(np.float32)}


def ecod_scorer(cfg: ECODConfig, n_features: int):
    def one(params, x):
        sorted_ = params["sorted"]  # (D, N)
        n = sorted_.shape[1]
        below = jax.vmap(lambda col, v: jnp.searchsorted(col, v, side="right"))(sorted_, x)
        above = n - jax.vmap(lambda col, v: jnp.searchsorted(col, v, side="left"))(sorted_, x)
        # The empirical CDF of the training rows with the sample itself among them (PyOD
        # computes it on the rows being scored): never 0, so the logs stay finite.
        u_left = -jnp.log((below + 1.0) / (n + 1.0))
        u_right = -jnp.log((above + 1.0) / (n + 1.0))
        u_skew = jnp.where(params["skew_sign"] < 0, u_left, u_right)
        sums = {
            "left": jnp.sum(u_left),
            "right": jnp.sum(u_right),
            "both": jnp.sum(jnp.maximum(u_left, u_right)),
        }
        if cfg.tails == "auto":
            return {"score": jnp.maximum(jnp.maximum(sums["left"], sums["right"]), jnp.sum(u_skew))}
        return {"score": sums[cfg.tails]}

    return one


def _baseline(name, description, config_cls, fit, scorer, estimator) -> Detector:
    return register(
        Detector(
            name=name,
            description=description,
            config_cls=config_cls,
            presets={"default": config_cls(), "tiny": config_cls()},
            phases=(),
            make_sample_scorer=scorer,
            fit_params=fit,
            estimator=estimator,
        )
    )


KNN = _baseline("knn", "k-nearest-neighbour distance (baseline)", KNNConfig, knn_fit, knn_scorer, "KNN")
IFOREST = _baseline(
    "iforest", "Isolation Forest (baseline)", IForestConfig, iforest_fit, iforest_scorer, "IsolationForest"
)
PCA = _baseline("pca", "PCA reconstruction error (baseline)", PCAConfig, pca_fit, pca_scorer, "PCA")
ECOD = _baseline(
    "ecod", "ECOD empirical-CDF tail probabilities (baseline)", ECODConfig, ecod_fit, ecod_scorer, "ECOD"
)
BASELINES = ("knn", "iforest", "pca", "ecod")
