"""A suite's table from its cells, with the published results beside: per set the mean over
seeds, the mean over sets, average ranks among all methods, wins and losses against each
published method with a paired Wilcoxon p-value; as Markdown, JSON, a rank plot and a page."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.stats import rankdata, wilcoxon

from jax_anomaly.persistence import atomic_write

PUBLISHED_DIR = Path(__file__).resolve().parent / "published"


@dataclasses.dataclass(frozen=True)
class Published:
    """Published results of a suite.

    Attributes:
      per_set: ``{method: {set: value}}`` (empty when papers give only overall figures).
      overall: ``{method: value}`` figures over the whole collection.
      source: where the numbers come from.
      note: how their protocol differs from ours.
    """

    per_set: dict
    overall: dict
    source: str
    note: str = ""


def read_published_csv(name: str) -> dict[str, dict[str, float]]:
    """``{method: {set: value}}`` from ``published/<name>.csv`` (a ``set`` column, one column
    a method)."""
    with open(PUBLISHED_DIR / f"{name}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    methods = [k for k in rows[0] if k != "set"]
    return {m: {r["set"]: float(r[m]) for r in rows if r[m] != ""} for m in methods}


def read_published_overall(name: str) -> dict[str, float]:
    """``{method: value}`` from ``published/<name>.csv`` (columns ``method``, ``value``)."""
    with open(PUBLISHED_DIR / f"{name}.csv", newline="") as f:
        return {r["method"]: float(r["value"]) for r in csv.DictReader(f)}


@dataclasses.dataclass(frozen=True)
class Table:
    """A suite's results: ``ours[detector][set]`` the mean of the metric over the seeds (in the
    published scale), ``cells`` how many seeds each mean holds, ``failed`` the failing cells,
    ``seconds[detector]`` the total wall time of its cells, and the published results."""

    suite: str
    metric: str
    scale: float
    sets: list[str]
    ours: dict[str, dict[str, float]]
    spread: dict[str, dict[str, float]]
    cells: dict[str, dict[str, int]]
    failed: list[dict]
    seconds: dict[str, float]
    published: Published | None
    extra: dict

    def methods(self) -> dict[str, dict[str, float]]:
        """Ours and the published per-set columns, by name (published ones as ``name*``)."""
        out = dict(self.ours)
        if self.published:
            out.update({f"{m}*": v for m, v in self.published.per_set.items()})
        return out

    def common_sets(self, methods: dict) -> list[str]:
        return [s for s in self.sets if all(s in v for v in methods.values())]

    def means(self, exclude: Sequence[str] = ()) -> dict[str, float]:
        """Each method's mean over the sets that every method has (but ``exclude``)."""
        methods = self.methods()
        excluded = set(exclude)
        sets = [s for s in self.common_sets(methods) if s not in excluded]
        return {m: float(np.mean([v[s] for s in sets])) for m, v in methods.items()} if sets else {}

    def ranks(self) -> dict[str, float]:
        """Average rank (1 = best) over the common sets, ties shared."""
        methods = self.methods()
        sets = self.common_sets(methods)
        if not sets:
            return {}
        names = list(methods)
        values = np.array([[methods[m][s] for m in names] for s in sets])
        r = np.vstack([rankdata(-row) for row in values]).mean(axis=0)
        return dict(zip(names, r.tolist(), strict=True))

    def summary(self) -> list[tuple[str, int, float | None, float | None]]:
        """``(method, sets it has, mean, average rank)`` of every method, best rank first
        (best mean first where there are no ranks)."""
        means, ranks, methods = self.means(), self.ranks(), self.methods()
        order = sorted(methods, key=lambda m: ranks.get(m, np.inf) if ranks else -means.get(m, -np.inf))
        return [(m, sum(s in methods[m] for s in self.sets), means.get(m), ranks.get(m)) for m in order]

    def versus(self, ours: str) -> list[dict]:
        """``ours`` against each other method on their common sets: wins, ties, losses and the
        two-sided paired Wilcoxon signed-rank p-value (None with fewer than 2 differences)."""
        methods = self.methods()
        rows = []
        for other, values in methods.items():
            if other == ours:
                continue
            sets = [s for s in self.sets if s in methods[ours] and s in values]
            a = np.array([methods[ours][s] for s in sets])
            b = np.array([values[s] for s in sets])
            diff = a - b
            p = None
            if np.count_nonzero(diff) >= 2:
                p = float(wilcoxon(a, b).pvalue)
            rows.append(
                {
                    "method": other,
                    "sets": len(sets),
                    "wins": int((diff > 0).sum()),
                    "ties": int((diff == 0).sum()),
                    "losses": int((diff < 0).sum()),
                    "mean_diff": float(diff.mean()) if len(sets) else None,
                    "p": p,
                }
            )
        return rows

    def to_json(self) -> dict:
        return {
            "suite": self.suite,
            "metric": self.metric,
            "scale": self.scale,
            "ours": self.ours,
            "spread": self.spread,
            "cells": self.cells,
            "means": self.means(),
            "ranks": self.ranks(),
            "published_overall": self.published.overall if self.published else {},
            "failed": self.failed,
            "seconds": self.seconds,
            **self.extra,
        }


def build_table(
    suite: str,
    records: list[dict],
    *,
    metric: str,
    scale: float,
    sets: list[str],
    detectors: list[str],
    published: Published | None,
    extra_metrics: tuple[str, ...] = (),
) -> Table:
    """The table of ``records`` (the cells) for ``detectors`` on ``sets``."""
    ours, spread, cells, seconds, failed = {}, {}, {}, {}, []
    extra = {m: {} for m in extra_metrics}
    resampled: set[str] = set()
    for det in detectors:
        ours[det], spread[det], cells[det] = {}, {}, {}
        for m in extra_metrics:
            extra[m][det] = {}
        seconds[det] = 0.0
        for name in sets:
            rs = [r for r in records if r["detector"] == det and r["set"] == name]
            seconds[det] += sum(r.get("seconds", 0.0) for r in rs)
            failed += [
                {"detector": det, "set": name, "seed": r["seed"], "error": r["error"]}
                for r in rs
                if "error" in r
            ]
            if any(r.get("metrics", {}).get("resampled") for r in rs):
                resampled.add(name)
            values = [r["metrics"][metric] for r in rs if r.get("metrics", {}).get(metric) is not None]
            if values:
                ours[det][name] = float(np.mean(values)) * scale
                spread[det][name] = float(np.std(values)) * scale
                cells[det][name] = len(values)
            for m in extra_metrics:
                vals = [r["metrics"][m] for r in rs if r.get("metrics", {}).get(m) is not None]
                if vals and isinstance(vals[0], dict):  # e.g. AUROC per defect kind: per key
                    extra[m][det][name] = {k: float(np.mean([v[k] for v in vals])) for k in vals[0]}
                elif vals:
                    extra[m][det][name] = float(np.mean(vals))
    return Table(
        suite,
        metric,
        scale,
        sets,
        ours,
        spread,
        cells,
        failed,
        seconds,
        published,
        {"extra": extra, "resampled": sorted(resampled)},
    )


def _fmt(v, digits=1):
    return "" if v is None else f"{v:.{digits}f}"


def markdown(table: Table, *, header: str = "", digits: int = 1, per_set: bool = True) -> str:
    """The table as Markdown: a summary (means, ranks, published overall figures), wins and
    losses of each of ours against every other method, then per set."""
    lines = [header] if header else []
    ranks = table.ranks()
    methods = table.methods()
    lines += [f"Metric: {table.metric} (x{table.scale:g}). Published columns carry a *.", ""]
    resampled = [s for s in table.extra.get("resampled", []) if s in table.sets]
    clean = table.means(exclude=resampled) if resampled else {}
    extra_col = f" mean of the {len(table.sets) - len(resampled)} sets not resampled |" if resampled else ""
    lines += [
        "| method | sets | mean | avg rank |" + extra_col,
        "|---|---|---|---|" + ("---|" if resampled else ""),
    ]
    for m, n, mean, rank in table.summary():
        row = f"| {m} | {n} | {_fmt(mean, digits)} | {_fmt(rank, 2)} |"
        lines.append(row + (f" {_fmt(clean.get(m), digits)} |" if resampled else ""))
    if resampled:
        lines += [
            "",
            f"Resampled with replacement (copies of rows in train and test): {', '.join(resampled)}.",
        ]
    groups = sorted({s.partition(":")[0] for s in table.sets if ":" in s})
    if len(groups) > 1 or (groups and len(groups) < len(table.sets)):
        lines += ["", "Mean per group of sets:", ""]
        lines += ["| method | " + " | ".join(groups) + " |", "|---" * (len(groups) + 1) + "|"]
        for m in table.ours:
            row = []
            for g in groups:
                vals = [v for s, v in table.ours[m].items() if s.partition(":")[0] == g]
                row.append(_fmt(float(np.mean(vals)), digits) if vals else "")
            lines.append(f"| {m} | " + " | ".join(row) + " |")
    if table.published and table.published.overall:
        lines += ["", "Published figures over the whole collection:", ""]
        lines += [f"- {m}: {v:g}" for m, v in table.published.overall.items()]
    if table.published:
        lines += ["", f"Source: {table.published.source}"]
        if table.published.note:
            lines += ["", f"Protocol: {table.published.note}"]
    if table.published and table.published.per_set:
        for det in table.ours:
            lines += ["", f"**{det}** against each method (paired Wilcoxon signed-rank, two-sided):", ""]
            lines += [
                "| method | sets | wins | ties | losses | mean diff | p |",
                "|---|---|---|---|---|---|---|",
            ]
            for r in table.versus(det):
                p = "" if r["p"] is None else f"{r['p']:.3g}"
                lines.append(
                    f"| {r['method']} | {r['sets']} | {r['wins']} | {r['ties']} | {r['losses']} | "
                    f"{_fmt(r['mean_diff'], digits)} | {p} |"
                )
    if per_set:
        published = [f"{m}*" for m in table.published.per_set] if table.published else []
        published.sort(key=lambda m: ranks.get(m, np.inf))
        shown = list(table.ours) + published[:8]  # ours and the 8 best-ranked published columns
        lines += ["", "Per set (ours: mean over seeds; the 8 best-ranked published methods):", ""]
        lines += ["| set | " + " | ".join(shown) + " |", "|---" * (len(shown) + 1) + "|"]
        for s in table.sets:
            row = [_fmt(methods[c].get(s), digits) for c in shown]
            lines.append(f"| {s} | " + " | ".join(row) + " |")
    lines += _extra_markdown(table, digits)
    if table.failed:
        lines += ["", f"Failed cells ({len(table.failed)}):", ""]
        lines += [
            f"- {f['detector']} / {f['set']} / seed {f['seed']}: {f['error']}" for f in table.failed[:50]
        ]
    return "\n".join(lines) + "\n"


def _extra_markdown(table: Table, digits: int) -> list[str]:
    """The other metrics (mean over seeds and, for several sets, over the sets): a row per
    detector for the single-valued ones; the metrics holding a value per key (AUROC per
    defect kind) in a second table, a row per detector and key."""
    extra = table.extra.get("extra", {})
    if not extra:
        return []

    keys_of = {}  # metric -> its keys (None for a single-valued metric; empty: no key reported)
    for m, by_det in extra.items():
        dicts = [v for per_set in by_det.values() for v in per_set.values() if isinstance(v, dict)]
        keys_of[m] = {k for v in dicts for k in v} if dicts else None

    def mean(by_det, det, key):
        values = [
            v if key is None else (v.get(key) if isinstance(v, dict) else None)
            for v in by_det.get(det, {}).values()
        ]
        values = [v for v in values if v is not None]
        return _fmt(float(np.mean(values)) * table.scale, digits + 1) if values else ""

    plain = [m for m in extra if keys_of[m] is None]
    keyed = [m for m in extra if keys_of[m]]
    lines = []
    if plain:
        lines += ["", f"Other metrics (mean over seeds and sets; x{table.scale:g}):", ""]
        lines += ["| detector | " + " | ".join(plain) + " |", "|---" * (len(plain) + 1) + "|"]
        lines += [
            f"| {det} | " + " | ".join(mean(extra[m], det, None) for m in plain) + " |" for det in table.ours
        ]
    if keyed:
        keys = sorted(set().union(*(keys_of[m] for m in keyed)))
        lines += ["", f"Per key (mean over seeds and sets; x{table.scale:g}):", ""]
        lines += ["| detector | key | " + " | ".join(keyed) + " |", "|---" * (len(keyed) + 2) + "|"]
        for det in table.ours:
            for k in keys:
                cells = [mean(extra[m], det, k) for m in keyed]
                if any(cells):
                    lines.append(f"| {det} | {k} | " + " | ".join(cells) + " |")
    return lines


def rank_plot(table: Table, path: Path) -> Path | None:
    """A bar per method of its average rank (ours highlighted); None without ranks."""
    ranks = table.ranks()
    if not ranks:
        return None
    from jax_anomaly import plotting

    plotting.plot_ranks(
        path,
        ranks,
        table.ours,
        f"{table.suite}: ours (orange) and published (grey)",
        f"average rank over {len(table.common_sets(table.methods()))} sets (1 = best)",
    )
    return path


def page_html(table: Table, header: str, plot: Path | None, digits: int = 1, figures=()) -> str:
    """The suite's self-contained page: the summary (mean and average rank of every method),
    the rank plot, ``figures`` (PNG files, e.g. anomaly maps), wins and losses of ours against
    each method, and the per-set table."""
    from jax_anomaly import pages

    methods = table.methods()
    body = [f"<p>{pages.esc(line)}</p>" for line in header.strip().splitlines()[1:] if line.strip()]
    body.append(pages.table(["method", "sets", "mean", "average rank"], [list(r) for r in table.summary()]))
    if table.published and table.published.overall:
        body.append("<h2>Published over the whole collection</h2>")
        body.append(pages.table(["method", "value"], [[m, v] for m, v in table.published.overall.items()]))
    if table.published:
        notes = (table.published.source, table.published.note)
        body += [f'<p class="note">{pages.esc(t)}</p>' for t in notes if t]
    if plot is not None:
        body.append(pages.image(Path(plot).read_bytes(), "average rank (1 = best); ours in orange"))
    for figure in figures:
        body.append(pages.image(Path(figure).read_bytes(), Path(figure).stem))
    if table.published and table.published.per_set:
        for det in table.ours:
            body.append(f"<h2>{pages.esc(det)} against each method (paired Wilcoxon)</h2>")
            rows = [
                [r["method"], r["sets"], r["wins"], r["ties"], r["losses"], r["mean_diff"], r["p"]]
                for r in table.versus(det)
            ]
            body.append(pages.table(["method", "sets", "wins", "ties", "losses", "mean diff", "p"], rows))
    cols = list(table.ours) + ([f"{m}*" for m in table.published.per_set] if table.published else [])
    body.append("<h2>Per set</h2>")
    body.append(pages.table(["set", *cols], [[s, *(methods[c].get(s) for c in cols)] for s in table.sets]))
    if table.failed:
        body.append("<h2>Failed cells</h2>")
        rows = [list(f.values()) for f in table.failed]
        body.append(pages.table(["detector", "set", "seed", "error"], rows))
    return pages.page(f"Suite {table.suite}", "\n".join(body))


def write_outputs(table: Table, out: Path, *, header: str, digits: int = 1) -> dict[str, Path]:
    """``table.md``, ``table.json``, ``ranks.png`` (where there are ranks) and ``index.html``
    in ``out``; the page shows the figures the suite left in ``out/figures`` of the detectors
    in the table (anomaly maps)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(table, header=header, digits=digits)
    paths = {"markdown": out / "table.md", "json": out / "table.json", "page": out / "index.html"}
    atomic_write(paths["markdown"], text.encode())
    atomic_write(paths["json"], (json.dumps(table.to_json(), indent=1, default=float) + "\n").encode())
    plot = rank_plot(table, out / "ranks.png")
    figures = [
        f for f in sorted((out / "figures").glob("*.png")) if f.stem.rpartition("_seed")[0] in table.ours
    ]
    atomic_write(paths["page"], page_html(table, header, plot, digits, figures).encode())
    if plot:
        paths["plot"] = plot
    return paths
