"""The search behind the default tabular detector: closed-form candidate scores on the
``adbench`` suite's splits, cached per (protocol, seed, set), and their combinations judged by
the suite's mean AUROC, worst sets against kNN and, per protocol, beside DTE's 26 methods.

    python experiments/tabular_search.py compute --protocol semi --seeds 0
    python experiments/tabular_search.py judge --protocol semi --seeds 0 [--show knn_mean5 ...]

Each candidate is normalised the way a deployed detector can: by the median and the
inter-quartile range of its scores on the training rows (kNN scores of a training row leave
that row out), so combinations are means of robust z-scores. Writes
``results/suites/tabular_search/<protocol>.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.ensemble import IsolationForest

from jax_anomaly.config import parse_int_list
from jax_anomaly.data.collections import adbench_files, load_adbench, protocol_split
from jax_anomaly.detectors.neighbors import nearest_distances, reference_blocks
from jax_anomaly.detectors.tabular import robust_scale
from jax_anomaly.metrics import ranking_metrics
from jax_anomaly.suites.tables import read_published_csv

OUT = Path("results/suites/tabular_search")
CACHE = Path("/tmp/tabular_search")
K_MAX = 50
CHUNK = 2048


def knn_topk(ref: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    blocks = jax.tree.map(jnp.asarray, reference_blocks(ref))
    fn = jax.jit(jax.vmap(lambda x: nearest_distances(blocks, x, k)))
    return np.concatenate(
        [np.asarray(fn(jnp.asarray(query[i : i + CHUNK]))) for i in range(0, len(query), CHUNK)]
    )


@jax.jit
def _bag_min(refs, query):
    """(N, B): each query's squared distance to its nearest row of each bag ``refs`` (B, P, D)."""
    rr = jnp.sum(refs**2, -1)  # (B, P)
    qq = jnp.sum(query**2, -1)  # (N,)
    d2 = qq[:, None, None] - 2 * jnp.einsum("nd,bpd->nbp", query, refs) + rr[None]
    return jnp.maximum(d2, 0.0)


def bagged(x_train, x_test, seed, sizes, bags, suffix=""):
    """Nearest-neighbour distance in random subsamples of ``size`` rows, averaged over
    ``bags`` subsamples (LeSiNN, Pang et al. 2015). A training row's own bags leave it out."""
    out = {}
    rng = np.random.default_rng(seed)
    for psi in sizes:
        psi = min(psi, len(x_train) - 1)
        idx = np.stack([rng.choice(len(x_train), psi, replace=False) for _ in range(bags)])
        refs = jnp.asarray(x_train[idx])

        def run(q, own=None, refs=refs, idx=idx):
            res = []
            for i in range(0, len(q), 512):
                d2 = np.asarray(_bag_min(refs, jnp.asarray(q[i : i + 512])))  # (n, B, P)
                if own is not None:  # a training row is no neighbour of itself
                    rows = own[i : i + 512]
                    d2 = np.where(idx[None] == rows[:, None, None], np.inf, d2)
                res.append(np.sqrt(d2.min(-1)).mean(-1))
            return np.concatenate(res)

        out[f"bag{psi}{suffix}"] = (run(x_train, np.arange(len(x_train))), run(x_test))
    return out


def distinct(x_train, x_test, k_max=20):
    """kNN against the distinct training rows: ``uknn`` counts an exact match as a neighbour
    at distance 0, ``xknn`` skips it (a training row scored by the other rows)."""
    ref = np.unique(x_train, axis=0)
    k = min(k_max, len(ref) - 1)
    d_test = knn_topk(ref, x_test, k + 1)
    d_train = knn_topk(ref, x_train, k + 1)
    out = {}
    eps = 1e-6

    def skip_exact(d):
        exact = d[:, 0] <= eps
        return np.where(exact[:, None], d[:, 1:], d[:, :-1])

    x_test_d, x_train_d = skip_exact(d_test), skip_exact(d_train)
    for kk in (1, 2, 3, 5, 10, 20):
        kk = min(kk, k)
        out[f"uknn{kk}"] = (x_train_d[:, kk - 1], d_test[:, kk - 1])
        out[f"uknn_mean{kk}"] = (x_train_d[:, :kk].mean(1), d_test[:, :kk].mean(1))
        out[f"xknn{kk}"] = (x_train_d[:, kk - 1], x_test_d[:, kk - 1])
        out[f"xknn_mean{kk}"] = (x_train_d[:, :kk].mean(1), x_test_d[:, :kk].mean(1))
    return out


def extend(protocol: str, seeds: list[int]):
    """Adds the later candidates to the cached files."""
    for seed in seeds:
        for name in adbench_files():
            path = CACHE / protocol / str(seed) / f"{name}.npz"
            arrays = dict(np.load(path))
            x, y = load_adbench(name)
            sp = protocol_split(x, y, protocol=protocol, seed=seed)
            new = {}
            if "bag16.test" not in arrays:
                new.update(bagged(sp.x_train, sp.x_test, seed + 1, (16, 64), 64))
            if "uknn1.test" not in arrays:
                new.update(distinct(sp.x_train, sp.x_test))
            if not new:
                continue
            for c, (tr, te) in new.items():
                arrays[f"{c}.train"], arrays[f"{c}.test"] = tr, te
            np.savez(path, **arrays)
            print(f"[{protocol} seed {seed}] extended {name}", flush=True)


def components(
    x_train: np.ndarray, x_test: np.ndarray, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{name: (train scores, test scores)}``."""
    out = {}
    k = min(K_MAX, len(x_train) - 1)
    d_test = knn_topk(x_train, x_test, k)
    d_train = knn_topk(x_train, x_train, k + 1)[:, 1:]  # leave the row itself out
    for kk in (1, 3, 5, 10, 20, 50):
        kk = min(kk, k)
        out[f"knn{kk}"] = (d_train[:, kk - 1], d_test[:, kk - 1])
        out[f"knn_mean{kk}"] = (d_train[:, :kk].mean(1), d_test[:, :kk].mean(1))
        out[f"knn_sqmean{kk}"] = (
            np.log((d_train[:, :kk] ** 2).mean(1) + 1e-12),
            np.log((d_test[:, :kk] ** 2).mean(1) + 1e-12),
        )
    out.update(bagged(x_train, x_test, seed, (256, 1024), 16))
    forest = IsolationForest(random_state=seed).fit(x_train)
    out["iforest"] = (-forest.score_samples(x_train), -forest.score_samples(x_test))
    mean = x_train.mean(0)
    cov = np.cov(x_train, rowvar=False) + 1e-3 * np.eye(x_train.shape[1])
    prec = np.linalg.inv(cov)

    def maha(x):
        c = x - mean
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", c, prec, c), 0))

    out["maha"] = (maha(x_train), maha(x_test))
    return out


def compute(protocol: str, seeds: list[int]):
    names = list(adbench_files())
    for seed in seeds:
        for i, name in enumerate(names):
            path = CACHE / protocol / str(seed) / f"{name}.npz"
            if path.exists():
                continue
            t0 = time.time()
            x, y = load_adbench(name)
            sp = protocol_split(x, y, protocol=protocol, seed=seed)
            comps = components(sp.x_train, sp.x_test, seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            arrays = {"y": sp.y_test, "resampled": np.array(sp.resampled)}
            for c, (tr, te) in comps.items():
                arrays[f"{c}.train"], arrays[f"{c}.test"] = tr, te
            np.savez(path, **arrays)
            print(f"[{protocol} seed {seed}] {i + 1}/{len(names)} {name} {time.time() - t0:.1f}s", flush=True)


def robust_z(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """``test`` on the scale of ``train``, as the default detector puts each member."""
    centre, spread = robust_scale(train[:, None])
    return (test - centre[0]) / spread[0]


def load(protocol, seed, name):
    return np.load(CACHE / protocol / str(seed) / f"{name}.npz")


def score(data, combo: str) -> np.ndarray:
    parts = combo.split("+")
    if len(parts) == 1:
        return data[f"{combo}.test"]
    return np.mean([robust_z(data[f"{p}.train"], data[f"{p}.test"]) for p in parts], 0)


def judge(protocol: str, seeds: list[int], combos: list[str]):
    names = list(adbench_files())
    published = read_published_csv(f"adbench_{protocol}")
    table = {}
    for combo in combos:
        per_set = {}
        for name in names:
            aucs = []
            for seed in seeds:
                d = load(protocol, seed, name)
                aucs.append(100 * ranking_metrics(d["y"], score(d, combo))["auroc"])
            per_set[name] = float(np.mean(aucs))
        table[combo] = per_set
    knn = table.get("knn5")
    rows = []
    for combo, per_set in table.items():
        vals = np.array([per_set[n] for n in names])
        below = sum(per_set[n] < knn[n] - 5 for n in names) if knn else -1
        # average rank among the published methods and this candidate alone
        ranks = []
        for n in names:
            pub = [published[m][n] for m in published if n in published[m]]
            allv = np.array(pub + [per_set[n]])
            ranks.append(1 + np.sum(allv > per_set[n]) + 0.5 * (np.sum(allv == per_set[n]) - 1))
        big = np.array([per_set[n] for n in names if not load(protocol, seeds[0], n)["resampled"]])
        rows.append((combo, vals.mean(), np.mean(ranks), below, big.mean()))
    rows.sort(key=lambda r: -r[1])
    for combo, mean, rank, below, big in rows:
        print(
            f"{combo:40s} mean {mean:6.2f}  rank-vs-26 {rank:5.2f}  >5 below knn5: {below}  "
            f"not resampled {big:6.2f}"
        )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{protocol}.json").write_text(json.dumps({"seeds": seeds, "per_set": table}, indent=1))
    return table


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("compute", "extend", "judge"))
    p.add_argument("--protocol", default="semi")
    p.add_argument("--seeds", default="0")
    p.add_argument("--show", nargs="*", default=None)
    a = p.parse_args()
    seeds = parse_int_list(a.seeds)
    if a.action == "compute":
        compute(a.protocol, seeds)
    elif a.action == "extend":
        extend(a.protocol, seeds)
    else:
        judge(a.protocol, seeds, a.show or ["knn5", "knn_mean5", "iforest"])


if __name__ == "__main__":
    main()
