"""Metrics of point scores on a labelled series (NumPy and scikit-learn only): AUC-ROC,
AUC-PR, VUS-ROC and VUS-PR (volume under the range-ROC / range-PR surface over buffer widths),
range-based precision/recall/F1, and point-adjusted F1 (reported only beside VUS-PR: it inflates).

VUS follows the definition of Paparrizos et al., "Volume Under the Surface" (VLDB 2022) as
the TSB-AD benchmark computes it (``RangeAUC_volume_opt``, 250 thresholds at score quantiles,
buffers ``0..2 * window``), vectorised over thresholds: a 10,000-point series takes well under
a second.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from jax_anomaly.data.series import label_events

N_THRESHOLDS = 250
PA_F1_NOTE = "point-adjusted F1 inflates: random scores reach high values; read it beside VUS-PR only"


def label_ranges(labels: np.ndarray) -> np.ndarray:
    """``(R, 2)`` inclusive ``[start, end]`` of each run of 1 in ``labels`` (``label_events``)."""
    return np.asarray([(s, e - 1) for s, e, _ in label_events(labels)], dtype=np.int64).reshape(-1, 2)


def _prefix_counts(preds: np.ndarray) -> np.ndarray:
    """``(K, T + 1)`` running counts of predicted points: hits in ``[s, e]`` are
    ``counts[:, e + 1] - counts[:, s]``."""
    return np.concatenate([np.zeros((len(preds), 1)), np.cumsum(preds, 1)], 1)


def _hits(counts: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """``(K, R)`` predicted points inside each inclusive range."""
    return counts[:, ranges[:, 1] + 1] - counts[:, ranges[:, 0]]


def _check(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(np.int64)
    scores = np.asarray(scores, np.float64)
    if labels.ndim != 1 or scores.shape != labels.shape:
        raise ValueError(
            f"labels and scores must be 1-D of one length, got {labels.shape} and {scores.shape}"
        )
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if not labels.any() or labels.all():
        raise ValueError("series metrics need both anomalous and normal points in the labels")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or inf")
    return labels, scores


def quantile_predictions(scores: np.ndarray, n_thresholds: int = N_THRESHOLDS) -> np.ndarray:
    """``(K, T)`` boolean predictions ``scores >= t`` for K thresholds at evenly spaced ranks of
    the sorted scores (TSB-AD's grid: the highest score first)."""
    ranked = -np.sort(-scores)
    thresholds = ranked[np.linspace(0, len(scores) - 1, n_thresholds).astype(int)]
    return scores[None, :] >= thresholds[:, None]


def _buffer(n: int, ranges: np.ndarray, width: int) -> np.ndarray:
    """TSB-AD's soft labels beside each range for buffer ``width``: ``sqrt(1 - d / width)`` at
    distance d = 1 .. width // 2 before and after (summed where buffers meet, capped at 1),
    0 inside the ranges and elsewhere."""
    out = np.zeros(n)
    half = width // 2
    if half == 0:
        return out
    d = np.arange(1, half + 1)
    for s, e in ranges:
        after, before = e + d, s - d
        np.add.at(out, after[after < n], np.sqrt(1 - d[after < n] / width))
        np.add.at(out, before[before >= 0], np.sqrt(1 - d[before >= 0] / width))
    out = np.minimum(out, 1.0)
    for s, e in ranges:
        out[s : e + 1] = 0.0
    return out


def _merged_ranges(ranges: np.ndarray, width: int, n: int) -> np.ndarray:
    """The ranges widened by ``width // 2`` on each side, merged where they meet (TSB-AD's
    ``new_sequence``): the events whose existence the range TPR counts."""
    half = width // 2
    merged = [[max(ranges[0, 0] - half, 0), ranges[0, 1] + half]]
    for s, e in ranges[1:]:
        if merged[-1][1] < s - half:
            merged.append([s - half, e + half])
        else:
            merged[-1][1] = e + half
    merged[-1][1] = min(merged[-1][1], n - 1)
    return np.asarray(merged)


def range_curves(labels, scores, width: int, preds: np.ndarray | None = None) -> dict:
    """Range-ROC and range-PR of one buffer ``width``: ``{'auc', 'ap', 'tpr', 'fpr', 'precision'}``."""
    labels, scores = _check(labels, scores)
    preds = quantile_predictions(scores) if preds is None else preds
    return _range_curves(labels, preds, label_ranges(labels), width)


def _range_curves(labels, preds, ranges, width, counts=None):
    n, p = len(labels), float(labels.sum())
    counts = _prefix_counts(preds) if counts is None else counts
    n_pred = counts[:, -1]
    tp_inside = preds @ labels.astype(np.float64)
    tp_buffer = preds @ _buffer(n, ranges, width)
    merged = _merged_ranges(ranges, width, n)
    existence = (_hits(counts, merged) > 0).mean(axis=1)
    tp = tp_inside + tp_buffer
    p_new = p + tp_buffer / 2  # (P + predicted soft labels) / 2, as TSB-AD
    tpr = np.minimum(tp / p_new, 1.0) * existence
    fpr = (n_pred - tp) / (n - p_new)
    precision = tp / np.maximum(n_pred, 1e-12)
    tpr_c = np.concatenate([[0.0], tpr, [1.0]])
    fpr_c = np.concatenate([[0.0], fpr, [1.0]])
    auc = float(np.sum((fpr_c[1:] - fpr_c[:-1]) * (tpr_c[1:] + tpr_c[:-1]) / 2))
    ap = float(np.sum((tpr_c[1:-1] - tpr_c[:-2]) * precision))
    return {"auc": auc, "ap": ap, "tpr": tpr, "fpr": fpr, "precision": precision}


def vus(labels, scores, max_buffer: int, n_thresholds: int = N_THRESHOLDS) -> dict:
    """VUS-ROC and VUS-PR: the range-ROC AUC and range-PR AP averaged over buffer widths
    ``0..max_buffer`` (TSB-AD: ``max_buffer = 2 * window``).

    Args:
      labels: (T,) 0/1 point labels with at least one anomaly and one normal point.
      scores: (T,) point scores, higher = more anomalous.
      max_buffer: the widest buffer (>= 0).
    Returns:
      ``{'vus_roc', 'vus_pr'}``.
    """
    labels, scores = _check(labels, scores)
    if max_buffer < 0:
        raise ValueError(f"max_buffer must be >= 0, got {max_buffer}")
    preds = quantile_predictions(scores, n_thresholds)
    counts = _prefix_counts(preds)
    preds = preds.astype(np.float64)
    ranges = label_ranges(labels)
    curves = [_range_curves(labels, preds, ranges, w, counts) for w in range(max_buffer + 1)]
    return {
        "vus_roc": float(np.mean([c["auc"] for c in curves])),
        "vus_pr": float(np.mean([c["ap"] for c in curves])),
    }


def range_precision_recall(labels, predicted, alpha: float = 0.2) -> dict:
    """Range-based precision, recall and F1 (Tatbul et al., NeurIPS 2018; flat bias, cardinality
    factor 1/overlapping ranges). Recall weighs existence by ``alpha`` and overlap by
    ``1 - alpha``; precision is overlap only.

    Args:
      labels: (T,) 0/1 truth; predicted: (T,) 0/1 or bool predictions.
    """
    labels = np.asarray(labels) > 0
    predicted = np.asarray(predicted) > 0
    if labels.shape != predicted.shape or labels.ndim != 1:
        raise ValueError(
            f"labels and predictions must be 1-D of one length, got {labels.shape} and {predicted.shape}"
        )
    recall = _range_recall(label_ranges(labels), label_ranges(predicted), predicted, alpha)
    precision = _range_recall(label_ranges(predicted), label_ranges(labels), labels, 0.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"range_precision": precision, "range_recall": recall, "range_f1": f1}


def _range_recall(real: np.ndarray, other: np.ndarray, other_points: np.ndarray, alpha: float) -> float:
    if not len(real):
        return 0.0
    hit = _hits(_prefix_counts(other_points[None]), real)[0]
    overlap = hit / (real[:, 1] - real[:, 0] + 1)
    if len(other):  # ranges of ``other`` overlapping each real range
        n_over = np.searchsorted(other[:, 0], real[:, 1], side="right") - np.searchsorted(
            other[:, 1], real[:, 0], side="left"
        )
    else:
        n_over = np.zeros(len(real))
    cardinality = np.where(n_over > 1, 1.0 / np.maximum(n_over, 1), 1.0)
    return float(np.mean(alpha * (hit > 0) + (1 - alpha) * overlap * cardinality))


def point_adjusted_f1(labels, scores, n_thresholds: int = N_THRESHOLDS) -> float:
    """The best point-adjusted F1 over score-quantile thresholds: a detection anywhere in an
    event counts the whole event as found. Inflating (``PA_F1_NOTE``)."""
    labels, scores = _check(labels, scores)
    preds = quantile_predictions(scores, n_thresholds)
    ranges = label_ranges(labels)
    counts = _prefix_counts(preds)
    found = _hits(counts, ranges) > 0
    tp = found @ (ranges[:, 1] - ranges[:, 0] + 1)
    fp = counts[:, -1] - preds @ labels
    fn = labels.sum() - tp
    return float(np.max(2 * tp / np.maximum(2 * tp + fp + fn, 1)))


def series_metrics(labels, scores, window: int, threshold: float | None = None) -> dict:
    """The headline metrics of point scores: AUC-ROC, AUC-PR, VUS-ROC, VUS-PR (buffers up to
    ``2 * window``) and point-adjusted F1 (labelled); with ``threshold`` also the range-based
    precision/recall/F1 and the point precision/recall/F1 of ``scores > threshold``."""
    labels, scores = _check(labels, scores)
    out = {
        "auc_roc": float(roc_auc_score(labels, scores)),
        "auc_pr": float(average_precision_score(labels, scores)),
        **vus(labels, scores, 2 * window),
        "pa_f1": point_adjusted_f1(labels, scores),
        "pa_f1_note": PA_F1_NOTE,
        "n_points": int(len(labels)),
        "n_anomalous_points": int(labels.sum()),
        "n_events": int(len(label_ranges(labels))),
    }
    if threshold is not None:
        pred = scores > threshold
        tp = int((pred & (labels == 1)).sum())
        precision = tp / max(int(pred.sum()), 1)
        recall = tp / int(labels.sum())
        out.update(
            threshold=float(threshold),
            precision=precision,
            recall=recall,
            f1=2 * precision * recall / (precision + recall) if tp else 0.0,
            **range_precision_recall(labels, pred),
        )
    return out
