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


def pro_auc(masks: np.ndarray, maps: np.ndarray, max_fpr: float = 0.3, n_thresholds: int = 200) -> float:
    """Per-region overlap (MVTec AD's PRO), integrated over the pixel false-positive rate from
    0 to ``max_fpr`` and divided by ``max_fpr`` (1 = every defect region fully found before any
    normal pixel is flagged).

    At each threshold the PRO is the mean, over the connected regions of the masks (8-connected),
    of the share of the region's pixels above the threshold; the FPR is the share of the
    pixels outside every mask above it.

    Args:
      masks: (N, H, W) bool defect masks (all False for normal images).
      maps: (N, H, W) anomaly maps, higher = more anomalous.

    Raises:
      ValueError: shapes differ, or no defect pixel or no normal pixel.
    """
    from scipy import ndimage

    masks, maps = np.asarray(masks, bool), np.asarray(maps, np.float64)
    if masks.shape != maps.shape or masks.ndim != 3:
        raise ValueError(f"masks and maps must both be (N, H, W), got {masks.shape} and {maps.shape}")
    normal = maps[~masks]
    if normal.size == 0 or not masks.any():
        raise ValueError("PRO needs defect pixels and normal pixels")
    regions = []
    for mask, amap in zip(masks, maps, strict=True):
        if mask.any():
            labelled, n = ndimage.label(mask, structure=np.ones((3, 3)))
            regions += [np.sort(amap[labelled == r]) for r in range(1, n + 1)]
    levels = np.linspace(1.0 - max_fpr, 1.0, n_thresholds)
    thresholds = np.quantile(normal, levels)
    normal_sorted = np.sort(normal)
    fpr = 1.0 - np.searchsorted(normal_sorted, thresholds, side="right") / normal.size
    pro = np.array(
        [np.mean([1.0 - np.searchsorted(r, t, side="right") / r.size for r in regions]) for t in thresholds]
    )
    order = np.argsort(fpr, kind="stable")
    f, p = np.r_[0.0, fpr[order]], np.r_[pro[order][0], pro[order]]
    keep = f <= max_fpr
    f, p = np.r_[f[keep], max_fpr], np.r_[p[keep], p[keep][-1]]  # flat to max_fpr
    return float(np.sum(np.diff(f) * (p[1:] + p[:-1]) / 2) / max_fpr)


def defect_metrics(labels, kinds, scores, masks=None, maps=None) -> dict:
    """Image AUROC, per defect kind (normal images against that kind), and with ``maps``
    (N, H, W) the pixel AUROC and PRO against ``masks``, overall and per kind (the normal
    images and that kind's; a kind whose masks are all empty has none). ``labels`` 1 marks a
    defective image, ``kinds`` names each image's kind (photographs: its folder)."""
    out = {"image_auroc": ranking_metrics(labels, scores)["auroc"]}
    groups = {str(k): (labels == 0) | (kinds == k) for k in np.unique(kinds[labels == 1])}
    out["kind_auroc"] = {
        k: ranking_metrics(labels[rows], scores[rows])["auroc"] for k, rows in groups.items()
    }
    if maps is not None:
        out["pixel_auroc"] = ranking_metrics(masks.ravel(), maps.ravel())["auroc"]
        out["pro"] = pro_auc(masks, maps)
        found = {k: rows for k, rows in groups.items() if masks[rows].any()}
        out["kind_pixel_auroc"] = {
            k: ranking_metrics(masks[rows].ravel(), maps[rows].ravel())["auroc"] for k, rows in found.items()
        }
        out["kind_pro"] = {k: pro_auc(masks[rows], maps[rows]) for k, rows in found.items()}
    return out
