import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from jax_anomaly.metrics import evaluate

rng = np.random.default_rng(0)
SCORES = np.r_[rng.normal(size=90), rng.normal(2, 1, size=10)]
LABELS = np.r_[np.zeros(90), np.ones(10)].astype(int)


def test_against_direct_computation():
    m = evaluate(LABELS, SCORES, 1.0, classes=np.r_[np.arange(90) % 3, np.full(10, 9)])
    pred = SCORES > 1.0
    tp = int((pred & (LABELS == 1)).sum())
    fp = int((pred & (LABELS == 0)).sum())
    fn = int((~pred & (LABELS == 1)).sum())
    tn = int((~pred & (LABELS == 0)).sum())
    assert m["confusion_matrix"] == [[tn, fp], [fn, tp]]
    assert m["precision"] == pytest.approx(tp / (tp + fp))
    assert m["recall"] == pytest.approx(tp / (tp + fn))
    assert m["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert m["auroc"] == pytest.approx(roc_auc_score(LABELS, SCORES))
    assert m["auprc"] == pytest.approx(average_precision_score(LABELS, SCORES))
    assert m["normal_flagged"] == fp and m["anomalies_caught"] == tp
    assert m["per_class"]["9"]["count"] == 10
    assert m["per_class"]["9"]["flagged"] == pytest.approx(tp / 10)


def test_single_class_labels_do_not_crash():
    m = evaluate(np.zeros(5, int), np.arange(5.0), 2.5)
    assert m["auroc"] is None and "only normal samples" in m["note"]
    assert m["normal_flagged"] == 2


def test_shape_mismatch():
    with pytest.raises(ValueError, match="equal 1-D shapes"):
        evaluate(LABELS, SCORES[:5], 0.0)
