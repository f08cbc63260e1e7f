"""Combines the per-class scores of several one-class tables (``experiments/one_class.py``
writes ``<stem>_scores.npz`` beside each stacked table): each table's test scores are
standardised by its own held-out normal scores (mean and std, ``fitting.standardisation``)
and averaged, class by class; prints and writes the AUROC per class of each table alone and
of the combination.

    python experiments/one_class.py --dataset fashion_mnist --detector ae
    python experiments/one_class.py --dataset fashion_mnist --detector geom
    python experiments/combine_scores.py results/one_class/one_class_fashion_mnist_ae_scores.npz \\
        results/one_class/one_class_fashion_mnist_geom_scores.npz --out results/one_class/ae_geom.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from jax_anomaly.fitting import standardisation
from jax_anomaly.metrics import ranking_metrics


def load_scores(spec: str | Path) -> dict[int, dict[str, np.ndarray]]:
    """``{class: {'test', 'held_out', 'labels'}}`` of one ``_scores.npz`` file; ``PATH:PART``
    takes the detector's other score ``PART`` (e.g. ``geom_scores.npz:mahalanobis``)."""
    path, _, part = str(spec).partition(".npz:")
    path = path if path.endswith(".npz") else path + ".npz"
    prefix = f"{part}_" if part else ""
    with np.load(path) as f:
        classes = sorted(int(k.removeprefix("test_")) for k in f.files if k.startswith("test_"))
        if part and f"{prefix}test_{classes[0]}" not in f.files:
            raise ValueError(f"{path} has no score '{part}'")
        return {
            c: {
                "test": f[f"{prefix}test_{c}"],
                "held_out": f[f"{prefix}held_out_{c}"],
                "labels": f[f"labels_{c}"],
            }
            for c in classes
        }


def combine_tables(tables: list[dict[int, dict[str, np.ndarray]]], names: list[str]) -> dict:
    """AUROC (x100) per class of each table and of their standardised mean, and the means.

    Raises:
      ValueError: the tables cover other classes or other test labels (not the same test set).
    """
    classes = sorted(tables[0])
    for name, table in zip(names, tables, strict=True):
        if sorted(table) != classes:
            raise ValueError(f"{name} has classes {sorted(table)}, the first table {classes}")
        for c in classes:
            if not np.array_equal(table[c]["labels"], tables[0][c]["labels"]):
                raise ValueError(
                    f"{name}: class {c}'s test labels differ from the first table's (another split?)"
                )
    rows = []
    for c in classes:
        labels = tables[0][c]["labels"]
        row = {"class": c}
        standardised = []
        for name, table in zip(names, tables, strict=True):
            mean, std = standardisation(table[c]["held_out"][None])
            standardised.append((table[c]["test"] - mean[0]) / std[0])
            row[name] = 100 * ranking_metrics(labels, table[c]["test"])["auroc"]
        row["combined"] = 100 * ranking_metrics(labels, np.mean(standardised, axis=0))["auroc"]
        rows.append(row)
    columns = [*names, "combined"]
    return {"classes": rows, "mean": {n: float(np.mean([r[n] for r in rows])) for n in columns}}


def markdown(result: dict) -> str:
    columns = list(result["mean"])
    lines = ["| class | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [
        f"| {r['class']} | " + " | ".join(f"{r[n]:.1f}" for n in columns) + " |" for r in result["classes"]
    ]
    lines.append("| **mean** | " + " | ".join(f"**{result['mean'][n]:.2f}**" for n in columns) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "scores",
        nargs="+",
        type=Path,
        help="_scores.npz files of one-class tables (two or more; PATH:PART: a detector's other score)",
    )
    p.add_argument("--out", type=Path, help="JSON file of the result (a .md beside it)")
    args = p.parse_args(argv)
    if len(args.scores) < 2:
        p.error("give two or more _scores.npz files")
    names = [path.name.replace("_scores.npz", "").removeprefix("one_class_") for path in args.scores]
    result = combine_tables([load_scores(path) for path in args.scores], names)
    text = markdown(result)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        args.out.with_suffix(".md").write_text(text)
    return result


if __name__ == "__main__":
    main()
