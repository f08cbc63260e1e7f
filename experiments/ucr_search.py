"""Searches the closed-form discord candidates for the default series detector on the UCR
anomaly archive: per series, matrix-profile joins at several window lengths (fractions and
multiples of the dominant period), z-normalised and raw, against every other window (the
self-join) and against the training windows only; the test part's profiles are cached, then
single candidates and combinations are judged by the archive's accuracy over all series.

  python experiments/ucr_search.py compute --cache /tmp/ucr_search       # ~30 min, resumable
  python experiments/ucr_search.py judge --cache /tmp/ucr_search --out results/suites/ucr_search.json

``--queries all`` profiles the training part's windows too, so that ``judge`` adds the
``novel`` rule (``discords.novelty``); ``judge --spike 2`` lets the full-resolution jump test
(``DiscordsConfig.spike``) decide the series where it fires. ``compute --variants n`` caches
the roughness profiles (``discords.roughness``; give ``judge`` both caches,
``--cache A,B``), and ``judge --rough-prominence 2`` lets a roughness profile be chosen only
where its prominence is at least 2 (``DiscordsConfig.rough_prominence``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from jax_anomaly.data.collections import load_ucr, ucr_files
from jax_anomaly.timeseries.discords import (
    downsample,
    jump_ratio,
    jump_scale,
    novelty,
    prominence,
    roughness,
)
from jax_anomaly.timeseries.profile import STD_FLOOR, join, window_rows
from jax_anomaly.timeseries.windows import dominant_period, windows_to_points

RELATIVE = (0.25, 0.5, 1.0, 2.0, 4.0)
MIN_LEN, MAX_LEN = 4, 512
JOINS = ("all", "train")
ZONES = (1.0, 2.0, 4.0, 8.0)  # multiples of max(window, period) the second peak lies beyond
MARGIN = 100


def _diff(x: np.ndarray) -> np.ndarray:
    return np.diff(x, axis=0, prepend=x[:1])


# name -> (series transform, z-normalise the windows, exclusion zone in window lengths)
VARIANTS = {
    "z": (None, True, 0.5),
    "r": (None, False, 0.5),
    "d": (_diff, False, 0.5),  # raw windows of the first difference
    "dz": (_diff, True, 0.5),
    "zx": (None, True, 1.0),  # no overlapping neighbour at all
    "rx": (None, False, 1.0),
    "n": ("roughness", False, 0.5),  # raw windows of the full-resolution roughness, averaged
}


def averaging_factor(x: np.ndarray, train_end: int, max_points: int, period_points: int, cap: int) -> int:
    """How many points to average: enough to bring the series to ``max_points``, but no more
    than keeps ``period_points`` points in a period (with ``period_points`` 0: the first rule
    alone), and at least enough to bring it to ``cap`` points."""
    f0 = max(1, -(-len(x) // max_points))
    if not period_points:
        return f0
    p0 = dominant_period(downsample(x[:train_end], f0)) * f0
    return max(-(-len(x) // cap), min(f0, max(1, p0 // period_points)))


def compute_one(
    name: str,
    max_points: int,
    data_dir: str | None,
    variants=("z", "r"),
    period_points: int = 0,
    cap: int = 60_000,
    relative=RELATIVE,
    queries: str = "test",
) -> dict:
    s = load_ucr(name, data_dir)
    x = s.values.astype(np.float64).reshape(len(s.values), -1)
    lo, hi = x[: s.train_end].min(0), x[: s.train_end].max(0)
    x = (x - lo) / np.where(hi > lo, hi - lo, 1.0)
    f = averaging_factor(x, s.train_end, max_points, period_points, cap)
    xd = downsample(x, f)
    tr = s.train_end // f
    p = dominant_period(xd[:tr])
    floor = STD_FLOOR * float(xd[:tr].std())
    out = {"f": f, "p": p, "train_end": s.train_end, "begin": s.begin, "end": s.end, "n": len(s.values)}
    lengths = sorted({int(np.clip(round(r * p), MIN_LEN, min(MAX_LEN, tr // 2))) for r in relative})
    out["lengths"] = np.array(lengths)
    for m in lengths:
        q0 = max(0, tr - m + 1) if queries == "test" else 0
        for variant in variants:
            transform, norm, excl = VARIANTS[variant]
            if transform == "roughness":
                xv = roughness(x, x[: s.train_end], f)[0]
            else:
                xv = transform(xd) if transform else xd
            fl = STD_FLOOR * float(xv[:tr].std()) if transform else floor
            w = window_rows(xv, m, norm, fl)
            pos = np.arange(len(w))
            a, t = join(w[q0:], pos[q0:], w, pos, pos + m <= tr, max(1, int(m * excl)))
            key = variant + str(m)
            out[key + "_all"], out[key + "_train"] = a.astype(np.float32), t.astype(np.float32)
        out[f"q0_{m}"] = q0
    return out


def compute_method(name: str, method: str, data_dir: str | None) -> dict:
    """A registered series method's point scores of the test part (defaults: automatic
    window, default training), for combinations with the cached profiles."""
    from jax_anomaly.timeseries import fit_series, score_series

    s = load_ucr(name, data_dir)
    model = fit_series(method, s.values[: s.train_end], seed=0)
    scores = score_series(model, s.values, seed=0)["score"][s.train_end :]
    return {f"{method}_points": scores.astype(np.float32), "n": len(s.values)}


def _same_factor(name: str, args) -> bool:
    """Whether ``args.reuse`` holds series ``name`` averaged by the factor these settings pick."""
    old = os.path.join(args.reuse, f"{name}.npz")
    if not os.path.exists(old):
        return False
    s = load_ucr(name, args.data_dir)
    x = s.values.reshape(len(s.values), -1)
    lo, hi = x[: s.train_end].min(0), x[: s.train_end].max(0)
    x = (x - lo) / np.where(hi > lo, hi - lo, 1.0)
    with np.load(old) as z:
        return int(z["f"]) == averaging_factor(x, s.train_end, args.max_points, args.period_points, args.cap)


def compute(args) -> None:
    os.makedirs(args.cache, exist_ok=True)
    names = [f"{i:03d}" for i in ucr_files(args.data_dir)][:: args.every]
    if args.names:
        names = [n for n in names if n in args.names.split(",")]
    t_all = time.perf_counter()
    for k, name in enumerate(names):
        path = os.path.join(args.cache, f"{name}.npz")
        if os.path.exists(path):
            continue
        t0 = time.perf_counter()
        if args.reuse and _same_factor(name, args):
            shutil.copy(os.path.join(args.reuse, f"{name}.npz"), path)
            continue
        if args.method:
            out = compute_method(name, args.method, args.data_dir)
        else:
            out = compute_one(
                name,
                args.max_points,
                args.data_dir,
                args.variants.split(","),
                args.period_points,
                args.cap,
                queries=args.queries,
            )
        np.savez(path + ".tmp.npz", **out)
        os.replace(path + ".tmp.npz", path)
        shape = "" if args.method else f"f={out['f']} p={out['p']} lengths={list(out['lengths'])} "
        took = time.perf_counter() - t0
        print(f"[{k + 1}/{len(names)}] {name} n={out['n']} {shape}{took:.1f}s", flush=True)
    print(f"done in {time.perf_counter() - t_all:.0f}s")


def load_cache(caches: str) -> dict[str, dict]:
    """The cached series of one or more (comma-separated) cache folders, merged per series;
    only the series every folder holds."""
    out, seen = {}, {}
    folders = caches.split(",")
    for cache in folders:
        for fn in sorted(os.listdir(cache)):
            if fn.endswith(".npz") and ".tmp" not in fn:
                with np.load(os.path.join(cache, fn)) as z:
                    out.setdefault(fn[:3], {}).update({k: z[k] for k in z.files})
                seen[fn[:3]] = seen.get(fn[:3], 0) + 1
    return {k: v for k, v in out.items() if seen[k] == len(folders)}


def part_profiles(c: dict, key: str, m: int, points: str = "centre") -> tuple[np.ndarray | None, np.ndarray]:
    """A cached profile over the training part's and the test part's points, divided by the
    root of the window length: window ``i`` scores its centre point (points no window
    centres on are NaN), or with ``points='mean'`` each point the mean of the windows that
    cover it. The training part is None unless the cache profiled its windows
    (``--queries all``)."""
    f, tr = int(c["f"]), int(c["train_end"]) // int(c["f"])
    n = int(c["n"]) // f
    q0 = int(c[f"q0_{m}"])
    prof = c[key] / np.sqrt(m)
    out = np.full(n, np.nan)
    if points == "mean":
        prof = np.where(np.isfinite(prof), prof, np.nanmax(np.where(np.isfinite(prof), prof, np.nan)))
        covered = windows_to_points(prof, len(prof) + m - 1, m, 1, "mean")
        out[q0 : q0 + len(covered)] = covered[: n - q0]
    else:
        start = q0 + m // 2
        out[start : start + len(prof)] = np.where(np.isfinite(prof), prof, np.nan)
    train = out[:tr] if q0 == 0 and tr >= m and np.isfinite(out[:tr]).any() else None
    return train, out[tr:]


def cached_kinds(c: dict) -> list[str]:
    """The profile kinds (``VARIANTS`` names) a cached series holds."""
    found = {m.group(1) for k in c if (m := re.fullmatch(r"([a-z]+)\d+_(all|train)", k))}
    return sorted(found, key=list(VARIANTS).index)


def profile_facts(c: dict, zones=ZONES, points: str = "centre") -> dict:
    """Per cached profile ``(kind, join, length index)``: whether its top solves the series,
    its prominence (``discords.prominence`` on the test part, for each zone multiple), its
    robust-scaled values (for the ``mean`` combination) and its novelty (``discords.novelty``:
    the test part's top over the training part's maximum; 0 unless cached with ``--queries
    all``)."""
    f, tr, p = int(c["f"]), int(c["train_end"]) // int(c["f"]), int(c["p"])
    lengths = [int(m) for m in c["lengths"]]
    facts = {}
    for kind, join_, ri in itertools.product(cached_kinds(c), JOINS, range(len(RELATIVE))):
        m = lengths[min(ri, len(lengths) - 1)]
        ref, v = part_profiles(c, f"{kind}{m}_{join_}", m, points)
        v = np.where(np.isnan(v), np.nanmedian(v), v)
        nov = novelty(v, None if ref is None else ref[np.isfinite(ref)])
        top = (tr + int(np.argmax(v))) * f + f // 2
        solved = int(c["begin"]) - MARGIN <= top < int(c["end"]) + MARGIN
        prom = {z: prominence(v, int(z * max(m, p))) for z in zones}
        q25, q50, q75 = np.percentile(v, (25, 50, 75))
        facts[(kind, join_, ri)] = (solved, prom, (v - q50) / max(q75 - q25, 1e-12), nov)
    for key in [k for k in c if k.endswith("_points")]:  # another method's point scores
        v = c[key][: (int(c["n"]) - int(c["train_end"])) // f * f].astype(np.float64)
        v = downsample(v[:, None], f)[:, 0]
        n_test = len(next(iter(facts.values()))[2])
        v = np.concatenate([v, np.full(max(0, n_test - len(v)), np.median(v))])[:n_test]
        top = (tr + int(np.argmax(v))) * f + f // 2
        solved = int(c["begin"]) - MARGIN <= top < int(c["end"]) + MARGIN
        q25, q50, q75 = np.percentile(v, (25, 50, 75))
        prom = {z: prominence(v, int(z * p)) for z in zones}
        for join_ in JOINS:
            facts[(key.removesuffix("_points"), join_, 0)] = (
                solved,
                prom,
                (v - q50) / max(q75 - q25, 1e-12),
                0.0,
            )
    return facts


def spike_facts(name: str, data_dir: str | None) -> tuple[float, bool]:
    """The test part's sharpest jump over the training part's (``discords.jump_ratio``, at full
    resolution) and whether that point solves the series."""
    s = load_ucr(name, data_dir)
    x = s.values.astype(np.float64).reshape(len(s.values), -1)
    ratio = jump_ratio(x, jump_scale(x[: s.train_end]))[s.train_end :]
    top = s.train_end + int(np.argmax(ratio))
    return float(ratio.max()), bool(s.begin - MARGIN <= top < s.end + MARGIN)


def solved_by_mean(c: dict, facts: dict, subset) -> bool:
    f, tr = int(c["f"]), int(c["train_end"]) // int(c["f"])
    v = np.mean([facts[s][2] for s in subset], axis=0)
    top = (tr + int(np.argmax(v))) * f + f // 2
    return bool(int(c["begin"]) - MARGIN <= top < int(c["end"]) + MARGIN)


def judge(args) -> None:
    cache = load_cache(args.cache)
    names = sorted(cache)
    t0 = time.perf_counter()
    facts = {n: profile_facts(cache[n], points=args.points) for n in names}
    spikes = {n: spike_facts(n, args.data_dir) for n in names} if args.spike else {}
    print(f"{len(names)} series cached; facts in {time.perf_counter() - t0:.0f}s")
    novel = all(any(fs[3] > 0 for fs in facts[n].values()) for n in names)
    gate = args.rough_prominence

    def eligible(n, subset, z):  # roughness profiles only above their prominence bar
        keep = [s for s in subset if gate is None or s[0] != "n" or facts[n][s][1][z] >= gate]
        return keep or subset

    rows = []
    rel_sets = [(1, 2), (1, 2, 3), (1, 2, 3, 4), (0, 1, 2, 3), (0, 1, 2, 3, 4), (2, 3, 4)]
    extra = tuple(sorted({k[0] for n in names for k in facts[n]} - {"z", "r"}))
    extra = tuple(e for e in extra if e not in VARIANTS)  # other methods' scores
    rough = ("zrn",) if all("n" in {k[0] for k in facts[n]} for n in names) else ()
    kind_sets = ("z", "r", "zr", *rough, *((kinds, e) for kinds in ("zr", *rough) for e in extra))
    for kinds, joins, rels in itertools.product(kind_sets, (("all",), ("train",), JOINS), rel_sets):
        if isinstance(kinds, tuple):  # z and r profiles, and another method's scores
            subset = [(k, j, r) for k in kinds[0] for j in joins for r in rels] + [(kinds[1], joins[0], 0)]
            kinds = "+".join(kinds)
        else:
            subset = [(k, j, r) for k in kinds for j in joins for r in rels]
        subset = [s for s in subset if s in facts[names[0]]]
        for rule in ("mean", *(f"select{z:g}" for z in ZONES), *(("novel",) if novel else ())):
            if rule == "mean":
                hits = [solved_by_mean(cache[n], facts[n], subset) for n in names]
            elif rule == "novel":
                hits = [
                    max((facts[n][s] for s in eligible(n, subset, 4.0)), key=lambda fs: fs[3])[0]
                    for n in names
                ]
            else:
                z = float(rule.removeprefix("select"))
                hits = [
                    max((facts[n][s] for s in eligible(n, subset, z)), key=lambda fs: fs[1][z])[0]
                    for n in names
                ]
            if args.spike:  # the full-resolution jump decides where it is sharp enough
                hits = [
                    spikes[n][1] if spikes[n][0] >= args.spike else h
                    for n, h in zip(names, hits, strict=True)
                ]
            rows.append(
                {
                    "kinds": kinds,
                    "joins": list(joins),
                    "lengths": [RELATIVE[r] for r in rels],
                    "rule": rule,
                    "accuracy": float(np.mean(hits)),
                    "solved": [n for n, h in zip(names, hits, strict=True) if h],
                }
            )
    rows.sort(key=lambda r: -r["accuracy"])
    for r in rows[:20]:
        joins = "+".join(r["joins"])
        print(f"{r['accuracy']:.3f} {r['kinds']:>5} {joins:>9} {str(r['lengths']):>24} {r['rule']}")
    oracle = np.mean([any(fs[0] for fs in facts[n].values()) for n in names])
    print(f"oracle (some profile's top solves the series): {oracle:.3f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "series": names,
            "oracle": float(oracle),
            "relative_lengths": list(RELATIVE),
            "spike": args.spike,
            "rough_prominence": gate,
            "points": args.points,
            "candidates": rows,
        }
        Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.out}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("compute", "judge"))
    ap.add_argument("--cache", default="/tmp/ucr_search")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--max-points", type=int, default=20_000)
    ap.add_argument("--every", type=int, default=1)
    ap.add_argument("--names", default=None, help="only these series (comma-separated ids)")
    ap.add_argument(
        "--period-points", type=int, default=0, help="average no more than keeps this many points a period"
    )
    ap.add_argument("--cap", type=int, default=60_000, help="with --period-points: at most this many points")
    ap.add_argument("--variants", default="z,r", help=f"profiles to cache, of {','.join(VARIANTS)}")
    ap.add_argument(
        "--reuse", default=None, help="copy a series from this cache where its factor is the same"
    )
    ap.add_argument(
        "--queries",
        default="test",
        choices=("test", "all"),
        help="profile the test part's windows only, or the training part's too (for novelty ratios)",
    )
    ap.add_argument("--method", default=None, help="cache this series method's point scores instead")
    ap.add_argument("--out", default=None)
    ap.add_argument(
        "--spike", type=float, default=None, help="judge: the full-resolution jump test's threshold (e.g. 2)"
    )
    ap.add_argument(
        "--rough-prominence",
        type=float,
        default=None,
        help="judge: a roughness (n) profile is chosen only where its prominence is at least this",
    )
    ap.add_argument("--points", default="centre", choices=("centre", "mean"), help="window scores -> points")
    args = ap.parse_args(argv)
    compute(args) if args.mode == "compute" else judge(args)


if __name__ == "__main__":
    main(sys.argv[1:])
