"""Self-contained HTML pages: a run folder's ``report.html``, a comparison of runs, and a
table page (one-class tables). Images are embedded as base64 PNGs; no scripts, no
stylesheets or fonts from the network: a page opens from disk anywhere."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
from pathlib import Path

import numpy as np

from jax_anomaly import plotting
from jax_anomaly.persistence import atomic_write

REPORT_FILE = "report.html"
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; vertical-align: top; }
figcaption { font-size: 0.85em; color: #555; } img { max-width: 100%; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
.note { color: #555; font-size: 0.9em; }
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.4g}"
    return str(value)


def table(header: list[str], rows: list[list], *, numeric_from: int = 1) -> str:
    """An HTML table; cells from column ``numeric_from`` on are right-aligned numbers."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{esc(_fmt(c))}</td>' if i >= numeric_from else f"<td>{esc(_fmt(c))}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def image(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{esc(caption)}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{esc(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{esc(title)}</h1>\n{body}\n</body>\n</html>\n"
    )


def _write(path: Path, text: str) -> Path:
    atomic_write(path, text.encode("utf-8"))
    return path


# ---- one run ------------------------------------------------------------------------------


def run_title(summary: dict) -> str:
    what = f"normal {summary['normal']}, " if "normal" in summary else ""
    return f"{summary['detector']} on {summary['dataset']} ({what}seed {summary['seed']})"


def run_body(summary: dict, plots_dir: Path | None) -> str:
    """The sections of a run's page from its ``metrics.json`` summary and its plots."""
    m, t, th = summary["metrics"], summary["timings"], summary["threshold"]
    parts = ["<h2>Summary</h2>"]
    rows = [
        ["detector", summary["detector"]],
        ["data set", summary["dataset"]],
        *([["normal classes", ", ".join(map(str, summary["normal"]))]] if "normal" in summary else []),
        *[[f"window: {k}", v] for k, v in summary.get("window", {}).items()],
        ["seed", summary["seed"]],
        ["threshold", f"{th['spec']} = {th['value']:.6g} (from {th['from']})"],
        *[[f"data: {k}", v] for k, v in summary["data"].items()],
        *[[f"training: {k}", v] for k, v in summary.get("training", {}).items() if k != "final"],
        *[[f"time: {k}", v] for k, v in t.items()],
        ["started / finished", f"{summary.get('started', '')} / {summary.get('finished', '')}"],
    ]
    parts.append(table(["", "value"], rows, numeric_from=9))
    parts.append("<h2>Metrics</h2>")
    names = summary.get("metric_names") or [
        "auroc",
        "auprc",
        "precision",
        "recall",
        "f1",
        "accuracy",
        "false_positive_rate",
        "threshold",
    ]
    parts.append(table(names, [[m.get(k) for k in names]], numeric_from=0))
    for note in ("note", "pa_f1_note"):
        if m.get(note):
            parts.append(f'<p class="note">{esc(m[note])}</p>')
    if "confusion_matrix" in m:
        (tn, fp), (fn, tp) = m["confusion_matrix"]
        parts.append("<h2>Confusion matrix</h2>")
        parts.append(
            table(["", "predicted normal", "predicted anomaly"], [["normal", tn, fp], ["anomaly", fn, tp]])
        )
    if summary.get("events"):
        parts.append("<h2>Events</h2>")
        rows = [["labelled", s, e, k] for s, e, k in summary["events"]["labelled"]]
        rows += [["detected", s, e, f"max score {p:.4g}"] for s, e, p in summary["events"]["detected"][:200]]
        parts.append(table(["", "start", "end", "detail"], rows, numeric_from=1))
    if summary.get("compare_thresholds"):
        parts.append("<h2>Thresholds compared</h2>")
        rows = [
            [label, c["threshold"], c["precision"], c["recall"], c["f1"]]
            for label, c in summary["compare_thresholds"].items()
        ]
        rows.insert(0, [f"{th['spec']} (chosen)", m["threshold"], m["precision"], m["recall"], m["f1"]])
        parts.append(table(["rule", "threshold", "precision", "recall", "F1"], rows))
    if summary.get("defects"):
        d = summary["defects"]
        parts.append("<h2>By defect kind</h2>")
        rows = [
            [k, v, d.get("kind_pixel_auroc", {}).get(k), d.get("kind_pro", {}).get(k)]
            for k, v in d["kind_auroc"].items()
        ]
        rows.append(["all", m["auroc"], d.get("pixel_auroc"), d.get("pro")])
        parts.append(table(["kind", "image AUROC", "pixel AUROC", "PRO (to 30 % FPR)"], rows))
    if m.get("per_class"):
        parts.append("<h2>Per class</h2>")
        rows = [[c, r["count"], r["flagged"], r["mean_score"]] for c, r in m["per_class"].items()]
        parts.append(table(["class", "count", "fraction flagged", "mean score"], rows))
    pngs = sorted(plots_dir.glob("*.png")) if plots_dir and plots_dir.is_dir() else []
    if pngs:
        parts.append("<h2>Plots</h2>")
        parts += [image(p.read_bytes(), p.stem) for p in pngs]
    parts.append("<h2>Configuration and versions</h2>")
    settings = {"config": summary["config"], "versions": summary["versions"]}
    parts.append(f"<pre>{esc(json.dumps(settings, indent=2))}</pre>")
    return "\n".join(parts)


def write_run_report(run_dir) -> Path:
    """Writes ``run_dir/report.html`` from the run folder's ``metrics.json`` and ``plots/``.

    Raises:
      ValueError: ``run_dir`` holds no ``metrics.json`` (not a finished run folder).
    """
    run_dir = Path(run_dir)
    summary = _summary(run_dir)
    return _write(run_dir / REPORT_FILE, page(run_title(summary), run_body(summary, run_dir / "plots")))


def _summary(run_dir: Path) -> dict:
    path = run_dir / "metrics.json"
    if not path.is_file():
        raise ValueError(f"{run_dir} is not a finished run folder (no metrics.json)")
    return json.loads(path.read_text())


def _labels_and_scores(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(run_dir / "scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return np.array([int(r["label"]) for r in rows]), np.array([float(r["score"]) for r in rows])


# ---- several runs -------------------------------------------------------------------------


def write_comparison(run_dirs, out) -> Path:
    """One page comparing runs: their metrics side by side and their ROC curves overlaid,
    with a link to each run's own report.

    Raises:
      ValueError: a folder is not a finished run folder.
    """
    out = Path(out)
    runs = [(Path(d), _summary(Path(d))) for d in run_dirs]
    header = [
        "run",
        "detector",
        "data set",
        "normal",
        "seed",
        "AUROC",
        "AUPRC",
        "F1",
        "threshold",
        "train s",
        "score s",
    ]
    rows, curves = [], []
    for d, s in runs:
        m, t = s["metrics"], s["timings"]
        rows.append(
            [
                d.name,
                s["detector"],
                s["dataset"],
                s["normal"],
                s["seed"],
                m["auroc"],
                m["auprc"],
                m["f1"],
                s["threshold"]["spec"],
                t["train_seconds"],
                t["score_seconds"],
            ]
        )
        if (d / "scores.csv").is_file():
            labels, scores = _labels_and_scores(d)
            if labels.min() != labels.max():
                curves.append((d.name, labels, scores))
    body = [table(header, rows, numeric_from=4), "<h2>Reports</h2><ul>"]
    for d, _ in runs:
        if not (d / REPORT_FILE).is_file():
            write_run_report(d)
        link = os.path.relpath(d / REPORT_FILE, out.parent)
        body.append(f'<li><a href="{esc(link)}">{esc(d.name)}</a></li>')
    body.append("</ul>")
    if curves:
        buf = io.BytesIO()
        plotting.plot_roc_overlay(buf, curves)
        body += ["<h2>ROC curves</h2>", image(buf.getvalue(), "ROC curves of the runs")]
    return _write(out, page(f"Comparison of {len(runs)} runs", "\n".join(body)))


# ---- tables -------------------------------------------------------------------------------


def write_table_page(
    out,
    title: str,
    header: list[str],
    rows: list[list],
    *,
    chart: bytes | None = None,
    notes: list[str] = (),
    links: dict[str, str] | None = None,
) -> Path:
    """A page holding one results table, an optional chart (PNG bytes), notes, and links
    (label -> path relative to the page)."""
    body = [table(header, rows)]
    body += [f'<p class="note">{esc(n)}</p>' for n in notes]
    if chart is not None:
        body.append(image(chart, title))
    if links:
        body.append("<h2>Runs</h2><ul>")
        body += [f'<li><a href="{esc(href)}">{esc(label)}</a></li>' for label, href in links.items()]
        body.append("</ul>")
    return _write(Path(out), page(title, "\n".join(body)))
