"""Threshold selection from anomaly scores (NumPy only; no jax import).

Specs (``--threshold``): ``percentile:Q`` of validation-normal scores (default 95),
``mean_std:K`` (mean + K std of validation-normal scores), ``contamination:C`` (flag a
fraction C of validation normals), ``test_percentile:Q`` (the classic tutorials' rule: a
percentile of the test scores themselves, transductive) and ``best_f1`` (the F1-optimal
threshold on the test labels: an oracle, for reference only, never a real choice).
A sample is flagged anomalous when ``score > threshold``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

DEFAULT_THRESHOLD = "percentile:95"
_KINDS = {
    "percentile": 95.0,
    "mean_std": 3.0,
    "contamination": 0.05,
    "test_percentile": 95.0,
    "best_f1": None,
}


@dataclasses.dataclass(frozen=True)
class ThresholdSpec:
    kind: str
    value: float | None = None

    @property
    def oracle(self) -> bool:
        """Uses the test labels: a reference, not a deployable threshold."""
        return self.kind == "best_f1"

    @property
    def transductive(self) -> bool:
        """Uses the (unlabelled) test scores themselves."""
        return self.kind == "test_percentile"

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}:{self.value:g}"


def parse_threshold(spec: str | ThresholdSpec) -> ThresholdSpec:
    """``'percentile:95'`` -> ``ThresholdSpec('percentile', 95.0)``; a kind alone takes its default.

    Raises:
      ValueError: unknown kind or a value out of range.
    """
    if isinstance(spec, ThresholdSpec):
        return spec
    kind, _, raw = str(spec).strip().partition(":")
    if kind not in _KINDS:
        raise ValueError(
            f"unknown threshold '{spec}'; expected percentile:Q, mean_std:K, contamination:C, "
            "test_percentile:Q or best_f1"
        )
    if kind == "best_f1":
        if raw:
            raise ValueError("threshold best_f1 takes no value")
        return ThresholdSpec(kind)
    try:
        value = float(raw) if raw else _KINDS[kind]
    except ValueError:
        raise ValueError(f"threshold '{spec}': '{raw}' is not a number") from None
    if kind in ("percentile", "test_percentile") and not 0 < value < 100:
        raise ValueError(f"threshold '{spec}': percentile must be in (0, 100)")
    if kind == "contamination" and not 0 < value < 1:
        raise ValueError(f"threshold '{spec}': contamination must be in (0, 1)")
    if kind == "mean_std" and not np.isfinite(value):
        raise ValueError(f"threshold '{spec}': K must be finite")
    return ThresholdSpec(kind, value)


def best_f1_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold ``t`` maximising F1 of ``scores > t`` against ``labels`` (oracle)."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels)
    if not labels.any():
        raise ValueError("best_f1 needs at least one anomaly in the labels")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order].astype(np.float64)
    tp = np.cumsum(y)
    k = np.arange(1, len(s) + 1)
    f1 = 2 * tp / (k + y.sum())
    # Only cut between distinct scores: flagging the top k means threshold just below s[k-1].
    distinct = np.r_[s[1:] < s[:-1], True]
    best = np.argmax(np.where(distinct, f1, -1))
    below = s[best + 1] if best + 1 < len(s) else s[best] - 1.0
    return float((s[best] + below) / 2)


def select_threshold(
    spec: str | ThresholdSpec,
    *,
    val_scores: np.ndarray | None = None,
    test_scores: np.ndarray | None = None,
    test_labels: np.ndarray | None = None,
) -> float:
    """The threshold that ``spec`` selects.

    Args:
      spec: a threshold spec string or ``ThresholdSpec``.
      val_scores: scores of held-out normal samples (for percentile, mean_std, contamination).
      test_scores: test scores (for test_percentile and best_f1).
      test_labels: test labels, 1 = anomaly (for best_f1 only).

    Raises:
      ValueError: the scores the spec needs are missing or empty.
    """
    spec = parse_threshold(spec)

    def need(arr, what):
        if arr is None or len(arr) == 0:
            raise ValueError(f"threshold {spec} needs {what}")
        return np.asarray(arr, np.float64)

    if spec.kind == "percentile":
        return float(np.percentile(need(val_scores, "validation scores"), spec.value))
    if spec.kind == "mean_std":
        v = need(val_scores, "validation scores")
        return float(v.mean() + spec.value * v.std())
    if spec.kind == "contamination":
        return float(np.percentile(need(val_scores, "validation scores"), 100 * (1 - spec.value)))
    if spec.kind == "test_percentile":
        return float(np.percentile(need(test_scores, "test scores"), spec.value))
    return best_f1_threshold(need(test_scores, "test scores"), need(test_labels, "test labels"))
