"""Detection metrics from scores, labels and a threshold (NumPy and scikit-learn; no jax)."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def ranking_metrics(labels: np.ndarray, scores: np.ndarray) -> dict:
    """AUROC and AUPRC (average precision); None with a note when only one class is present."""
    labels = np.asarray(labels)
    if labels.min() == labels.max():
        which = "anomalies" if labels.max() == 1 else "normal samples"
        note = f"AUROC/AUPRC undefined: the test labels contain only {which}"
        return {"auroc": None, "auprc": None, "note": note}
    return {
        "auroc": float(skm.roc_auc_score(labels, scores)),
        "auprc": float(skm.average_precision_score(labels, scores)),
    }


def evaluate(
    labels: np.ndarray, scores: np.ndarray, threshold: float, classes: np.ndarray | None = None
) -> dict:
    """All metrics in one JSON-ready dict.

    Args:
      labels: (N,) 1 = anomaly, 0 = normal.
      scores: (N,) higher = more anomalous.
      threshold: samples with ``score > threshold`` are predicted anomalous.
      classes: optional (N,) original class labels for the per-class report.

    Returns:
      auroc, auprc, threshold, precision, recall, f1, accuracy, confusion_matrix
      (``[[tn, fp], [fn, tp]]``), normal_flagged/normal_total, anomalies_caught/anomalies_total,
      false_positive_rate (normal samples flagged; None without normal samples),
      and ``per_class`` (count, fraction flagged, mean score) when ``classes`` is given.
    """
    labels = np.asarray(labels).astype(np.int64)
    scores = np.asarray(scores, np.float64)
    if labels.shape != scores.shape or labels.ndim != 1:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} must be equal 1-D shapes")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or inf values")
    pred = (scores > threshold).astype(np.int64)
    (tn, fp), (fn, tp) = skm.confusion_matrix(labels, pred, labels=[0, 1])
    out = ranking_metrics(labels, scores)
    out.update(
        threshold=float(threshold),
        precision=float(skm.precision_score(labels, pred, zero_division=0)),
        recall=float(skm.recall_score(labels, pred, zero_division=0)),
        f1=float(skm.f1_score(labels, pred, zero_division=0)),
        accuracy=float(np.mean(pred == labels)),
        confusion_matrix=[[int(tn), int(fp)], [int(fn), int(tp)]],
        normal_flagged=int(fp),
        normal_total=int(tn + fp),
        anomalies_caught=int(tp),
        anomalies_total=int(fn + tp),
        false_positive_rate=float(fp / (tn + fp)) if tn + fp else None,
    )
    if classes is not None:
        classes = np.asarray(classes)
        out["per_class"] = {
            str(c): {
                "count": int((classes == c).sum()),
                "flagged": float(pred[classes == c].mean()),
                "mean_score": float(scores[classes == c].mean()),
            }
            for c in np.unique(classes)
        }
    return out
