"""scikit-learn's own estimator checks over every registered estimator.

Two checks assume scikit-learn's outlier-detector convention (``predict`` returns -1 for
outliers and +1 for inliers, ``decision_function`` is negative for outliers); this library
keeps PyOD's (1 = anomaly, higher score = more anomalous), so they are expected to fail.
"""

from sklearn.utils.estimator_checks import parametrize_with_checks

import jax_anomaly as ja
from jax_anomaly.estimators import estimator_names

CONVENTION = {
    "check_outliers_fit_predict": "labels are PyOD's 0/1 (1 = anomaly), not scikit-learn's -1/+1",
    "check_outliers_train": "labels are PyOD's 0/1 and higher scores are more anomalous "
    "(scikit-learn: -1/+1, negative decision_function for outliers)",
}
# Image-only estimators: scikit-learn's checks feed rows of 1-10 columns, not square images
# (tests/detectors/test_geom.py and test_defects.py check their estimator API on images).
IMAGE_ONLY = {"TransformationDetector", "DefectSegmenter"}
# Tiny models and one epoch: the checks test the API, not the detection.
ESTIMATORS = [
    getattr(ja, name)(preset="tiny", epochs=1, batch_size=32)
    for name in estimator_names()
    if name not in IMAGE_ONLY
]


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda estimator: CONVENTION)
def test_sklearn_check(estimator, check):
    check(estimator)
