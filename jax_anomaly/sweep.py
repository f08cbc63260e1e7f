"""Sweeps: every point of a grid of settings (seeds, loss weights, learning rates) of one
estimator, trained as one compiled program and scored in one call.

    import jax_anomaly as ja

    sw = ja.sweep(ja.VAE(epochs=20), beta=[0.5, 1, 2], seed=range(3)).fit(X_normal)
    sw.decision_function(X_test)        # (9, N): every model's scores, one call
    sw.results(X_test, y_test)          # one row per model: its settings, AUROC, AUC-PR, ...
    sw.estimators_[4].predict(X_test)   # model 4 as an ordinary fitted estimator

All models train on one split of ``X`` (drawn by the estimator's own ``seed``, so their
thresholds come from the same held-out samples); a grid ``seed`` sets a model's
initialisation, batches and scoring draws. Model k ends, within float tolerance
(``detectors.stack``), as the estimator with ``points_[k]``'s settings fitted alone on that
split. The grid may hold ``seed``, ``TrainConfig``'s rates (``learning_rate``, ``b1``, ``b2``)
and the detector config's float settings (``beta``, ``lam``, ``kappa``, ``prior_weight``, ...:
as plain keywords, not inside ``model=``). Sizes, architectures and other settings that
change the program cannot share one: fit them apart.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable

import numpy as np
from sklearn.base import clone
from sklearn.metrics import average_precision_score, roc_auc_score

from jax_anomaly import fitting
from jax_anomaly.config import matmul_precision
from jax_anomaly.detectors import get_detector
from jax_anomaly.detectors.stack import TRAIN_HYPER
from jax_anomaly.estimators import AnomalyDetector


def sweep(estimator, **grid) -> Sweep:
    """A ``Sweep`` of ``estimator`` (an estimator instance, or a class: its defaults) over
    the product of ``grid``'s value lists, in the keywords' order (the last varies fastest)."""
    if isinstance(estimator, type):
        estimator = estimator()
    return Sweep(estimator, grid)


class Sweep:
    """Every point of ``grid`` (name -> values) of ``estimator``, fitted as one program.

    Attributes (after ``fit``):
      points_: the K grid points, dicts of the grid's names.
      estimators_: K fitted estimators, model k set to ``points_[k]``.
      stack_: the ``FittedStack`` of the K models (parameters on a leading model axis).
      diverged_: model index -> what went wrong, for models whose training diverged (they keep
        their last finite state and are still scored).

    Raises:
      TypeError: ``estimator`` is not an estimator of this library.
      ValueError: an empty grid or value list, or a name that cannot vary on the model axis.
    """

    def __init__(self, estimator: AnomalyDetector, grid: dict[str, Iterable]):
        if not isinstance(estimator, AnomalyDetector):
            raise TypeError(f"sweep needs an estimator of jax_anomaly (e.g. ja.VAE()), got {estimator!r}")
        if not grid:
            raise ValueError("sweep needs at least one setting to vary, e.g. seed=range(3)")
        self.estimator = estimator
        self.grid = {name: list(values) for name, values in grid.items()}
        fields = {f.name: f for f in dataclasses.fields(get_detector(estimator.name).config_cls)}
        for name, values in self.grid.items():
            if not values:
                raise ValueError(f"sweep: '{name}' has no values")
            if name not in ("seed", *TRAIN_HYPER) and name not in fields:
                raise ValueError(
                    f"sweep: '{name}' is not a setting of '{estimator.name}' that can vary on the "
                    f"model axis: use seed, {', '.join(TRAIN_HYPER)} or a float field of "
                    f"{get_detector(estimator.name).config_cls.__name__}"
                )
        self.model_fields = [name for name in self.grid if name in fields]

    def _point_estimator(self, point: dict) -> AnomalyDetector:
        est = clone(self.estimator)
        model = {**(est.model or {}), **{k: point[k] for k in self.model_fields}}
        return est.set_params(
            **{k: v for k, v in point.items() if k not in self.model_fields}, model=model or None
        )

    def fit(self, X, y=None, *, validation_data=None) -> Sweep:
        """Trains every grid point's model on ``X`` (normal samples) as one program; each
        gets its own threshold from its own held-out scores (as ``estimator.fit`` does)."""
        del y
        base = clone(self.estimator)
        names = list(self.grid)
        self.points_ = [dict(zip(names, v, strict=True)) for v in itertools.product(*self.grid.values())]
        ests = [self._point_estimator(p) for p in self.points_]
        X, x_train, x_val, perm = base._split(X, validation_data)
        self.stack_, models = fitting.fit_sweep(
            get_detector(base.name),
            [e.model_config() for e in ests],
            [e.train_config() for e in ests],
            x_train,
            x_val,
            spec=base.threshold_spec(),
            seeds=[e.seed for e in ests],
            precision=base.precision,
            devices=base.devices,
            progress=base.progress,
        )
        self._score_keys = [fitting.seed_keys(e.seed)[2] for e in ests]
        train_scores = self._scores(x_train) if x_val is not None else [None] * len(ests)
        for est, model, scores in zip(ests, models, train_scores, strict=True):
            est._set_model(model)
            est._set_training_scores(X, x_train, perm, scores)
        self.estimators_ = ests
        self.diverged_ = dict(self.stack_.result.diverged)
        self.n_features_in_ = X.shape[1]
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "stack_"):
            raise ValueError("this Sweep is not fitted yet: call fit(X) first")

    def _scores(self, X: np.ndarray) -> np.ndarray:
        detector = get_detector(self.estimator.name)
        with matmul_precision(self.estimator.precision):
            out = fitting.raw_scores(
                detector,
                self.stack_,
                detector.to_input(X),
                key=self._score_keys,
                devices=self.estimator.devices,
            )
        return np.asarray(out["score"], np.float64)

    def decision_function(self, X) -> np.ndarray:
        """Every model's anomaly scores (K, N) of ``X``, higher = more anomalous, in one call;
        row k equals ``estimators_[k].decision_function(X)``."""
        self._check_fitted()
        return self._scores(self.estimators_[0]._validate(X, reset=False))

    def predict(self, X) -> np.ndarray:
        """(K, N) labels: 1 where model k's score is above its own threshold."""
        scores = self.decision_function(X)
        return (scores > np.array([e.threshold_ for e in self.estimators_])[:, None]).astype(np.int64)

    def results(self, X=None, y=None) -> list[dict]:
        """One row per model: its grid point, threshold, training record (epochs run, best
        epoch, final validation loss, whether it diverged) and, given labelled ``X, y``
        (1 = anomaly), ``auroc`` and ``auc_pr`` of its scores and the share it flags."""
        self._check_fitted()
        scores = None
        if X is not None:
            y = np.asarray(y)
            if y.shape != (len(X),) or not np.isin(y, (0, 1)).all() or len(np.unique(y)) < 2:
                raise ValueError("results needs labels y (N,) of 0 (normal) and 1 (anomaly), both present")
            scores = self.decision_function(X)
        rows = []
        for k, (point, est) in enumerate(zip(self.points_, self.estimators_, strict=True)):
            result = self.stack_.result.results[k]
            last = result.history[-1] if result.history else {}
            row = {
                **point,
                "threshold": float(est.threshold_),
                "epochs": len(result.history),
                "best_epoch": result.best_epoch,
                **{f"final_{name}": v for name, v in last.items() if name != "epoch"},
                "diverged": self.diverged_.get(k),
            }
            if scores is not None:
                row["auroc"] = float(roc_auc_score(y, scores[k]))
                row["auc_pr"] = float(average_precision_score(y, scores[k]))
                row["flagged"] = float((scores[k] > est.threshold_).mean())
            rows.append(row)
        return rows

    def __repr__(self) -> str:
        grid = ", ".join(f"{k}={v!r}" for k, v in self.grid.items())
        return f"sweep({self.estimator!r}, {grid})"
