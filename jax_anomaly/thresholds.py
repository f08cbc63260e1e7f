"""Threshold selection from anomaly scores (NumPy only; no jax import).

Specs (``--threshold``): ``percentile:Q`` of validation-normal scores (default 95),
``mean_std:K`` (mean + K std of validation-normal scores), ``contamination:C`` (flag a
fraction C of validation normals), ``fpr:A`` (split-conformal: at most a fraction A of
exchangeable normal samples is flagged, in expectation), ``test_percentile:Q`` (the classic tutorials' rule: a
percentile of the test scores themselves, transductive) and ``best_f1`` (the F1-optimal
threshold on the test labels: an oracle, for reference only, never a real choice).
A sample is flagged anomalous when ``score > threshold``.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

DEFAULT_THRESHOLD = "percentile:95"
# kind -> default value; the first four are fitted on held-out normal scores.
_KINDS = {
    "percentile": 95.0,
    "mean_std": 3.0,
    "contamination": 0.05,
    "fpr": 0.05,
    "test_percentile": 95.0,
    "best_f1": None,
}


FITTABLE = ("percentile", "mean_std", "contamination", "fpr")
SPEC_HELP = (
    "percentile:Q, mean_std:K, contamination:C, fpr:A (conformal), test_percentile:Q or best_f1 (oracle)"
)


@dataclasses.dataclass(frozen=True)
class ThresholdSpec:
    """A parsed threshold rule (``parse_threshold``)."""

    kind: str
    value: float | None = None

    @property
    def fittable(self) -> bool:
        """Chosen from held-out normal scores alone: what a fitted model can carry."""
        return self.kind in FITTABLE

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
        raise ValueError(f"unknown threshold '{spec}'; expected {SPEC_HELP}")
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
    if kind in ("contamination", "fpr") and not 0 < value < 1:
        raise ValueError(f"threshold '{spec}': {kind} must be in (0, 1)")
    if kind == "mean_std" and not np.isfinite(value):
        raise ValueError(f"threshold '{spec}': K must be finite")
    return ThresholdSpec(kind, value)


def conformal_threshold(calibration_scores: np.ndarray, alpha: float) -> float:
    """Split-conformal threshold with a false-positive-rate guarantee.

    With ``n`` held-out normal scores, the threshold is the ``k``-th smallest of them,
    ``k = ceil((n + 1)(1 - alpha))``. For a new normal sample exchangeable with them,
    ``P(score > threshold) <= 1 - k / (n + 1) <= alpha``. Flagging ``score > threshold`` is
    the same as flagging a conformal p-value (``conformal_pvalues``) ``<= alpha``.
    Needs ``n >= 1 / alpha - 1`` scores; with fewer no finite threshold keeps the guarantee,
    so the threshold is ``inf`` (nothing flagged) and a warning says so.
    """
    s = np.sort(np.asarray(calibration_scores, np.float64))
    n = len(s)
    k = int(np.ceil((n + 1) * (1 - alpha) - 1e-9))
    if k > n:
        warnings.warn(
            f"fpr:{alpha:g} needs at least {int(np.ceil(1 / alpha - 1))} held-out normal scores, got {n}; "
            "the threshold is inf (nothing is flagged)",
            stacklevel=2,
        )
        return float("inf")
    return float(s[k - 1])


def conformal_pvalues(calibration_scores: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Conformal p-values ``(1 + #{calibration >= score}) / (n + 1)``: small = anomalous."""
    cal = np.sort(np.asarray(calibration_scores, np.float64))
    at_least = len(cal) - np.searchsorted(cal, np.asarray(scores, np.float64), side="left")
    return (1.0 + at_least) / (len(cal) + 1.0)


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
    spec: ThresholdSpec,
    *,
    val_scores: np.ndarray | None = None,
    test_scores: np.ndarray | None = None,
    test_labels: np.ndarray | None = None,
) -> float:
    """The threshold that ``spec`` selects.

    Args:
      spec: a parsed threshold rule.
      val_scores: scores of held-out normal samples (for percentile, mean_std, contamination).
      test_scores: test scores (for test_percentile and best_f1).
      test_labels: test labels, 1 = anomaly (for best_f1 only).

    Raises:
      ValueError: the scores the spec needs are missing or empty.
    """

    def need(arr, what):
        if arr is None or len(arr) == 0:
            raise ValueError(f"threshold {spec} needs {what}")
        return np.asarray(arr, np.float64)

    if spec.kind == "percentile":
        return float(np.percentile(need(val_scores, "validation scores"), spec.value))
    if spec.kind == "mean_std":
        v = need(val_scores, "validation scores")
        return float(v.mean() + spec.value * v.std())
    if spec.kind == "fpr":
        return conformal_threshold(need(val_scores, "validation scores"), spec.value)
    if spec.kind == "contamination":
        return float(np.percentile(need(val_scores, "validation scores"), 100 * (1 - spec.value)))
    if spec.kind == "test_percentile":
        return float(np.percentile(need(test_scores, "test scores"), spec.value))
    return best_f1_threshold(need(test_scores, "test scores"), need(test_labels, "test labels"))
