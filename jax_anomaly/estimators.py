"""scikit-learn style estimators over the registered detectors (the conventions of PyOD).

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler
    from jax_anomaly import AutoEncoder

    model = make_pipeline(MinMaxScaler(), AutoEncoder(epochs=50, threshold="fpr:0.05"))
    model.fit(X_normal)
    model.decision_function(X_test)   # higher = more anomalous
    model.predict(X_test)             # 1 = anomaly (score > threshold_), 0 = normal

``fit(X)`` trains on ``X`` (normal data; no labels), holding out ``validation_fraction``
of it (seeded) to pick ``threshold_`` and for early stopping. ``decision_function`` and
``score_samples`` both return the anomaly score, **higher = more anomalous** (as in PyOD;
note scikit-learn's own ``score_samples`` of outlier detectors is the opposite sign).
Inputs are expected in [0, 1], e.g. after a ``MinMaxScaler``; GAN detectors map them to
[-1, 1] themselves. Every registered detector with an ``estimator`` name gets its class
here (``AutoEncoder``, ``VAE``, ...); any detector is ``AnomalyDetector(name)``.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import ClassVar

import jax
import numpy as np
from scipy.special import erf
from scipy.stats import binom
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, validate_data

from jax_anomaly import fitting, serving, thresholds
from jax_anomaly.config import TrainConfig, field_docs
from jax_anomaly.detectors import DEFAULT_DETECTOR, check_features, get_detector, registry
from jax_anomaly.detectors.base import check_float32_range

# The estimator's parameters beyond TrainConfig's fields (which it takes by the same names).
_OWN_PARAMS = {
    "preset": None,
    "model": None,
    "threshold": thresholds.DEFAULT_THRESHOLD,
    "contamination": None,
    "validation_fraction": 0.1,
    "dataset": "",
    "precision": None,
    "seed": 0,
    "progress": False,
    "n_models": 1,
}
TRAIN_PARAMS = tuple(f.name for f in dataclasses.fields(TrainConfig))
_DEFAULTS = {**{f.name: f.default for f in dataclasses.fields(TrainConfig)}, **_OWN_PARAMS}


def _signature(with_detector: bool) -> inspect.Signature:
    P = inspect.Parameter
    params = [P("self", P.POSITIONAL_OR_KEYWORD)]
    if with_detector:
        params.append(P("detector", P.POSITIONAL_OR_KEYWORD, default=None))
    params += [P(name, P.KEYWORD_ONLY, default=default) for name, default in _DEFAULTS.items()]
    return inspect.Signature(params)


class AnomalyDetector(BaseEstimator):
    """A registered detector behind ``fit`` / ``decision_function`` / ``predict``.

    Args:
      detector: registry name (``ae``, ``anogan``, ...); the per-detector classes fix it.
        None (default): ``tabular``, the default tabular ensemble (``TabularDetector``).
      preset: the detector's preset (None: its default for ``dataset``).
      model: overrides of the detector config, e.g. ``{"hidden": (64,), "latent": 8}``.
      epochs, batch_size, learning_rate, b1, b2, patience, drop_remainder, unroll, devices,
        checkpoint, checkpoint_every, resume: training, the fields of ``TrainConfig``
        (``devices`` also shards scoring). ``epochs=None`` (default) trains for at least
        2,000 optimiser steps and at least 20 epochs (``training.auto_epochs``), so small
        and large data sets alike train to convergence.
      threshold: threshold rule on held-out normal scores: ``percentile:Q``, ``mean_std:K``,
        ``contamination:C`` or ``fpr:A`` (conformal, false-positive rate <= A).
      contamination: if set, overrides ``threshold`` with ``contamination:C``.
      validation_fraction: share of ``X`` held out (seeded) for the threshold and early
        stopping; 0 uses the training scores for the threshold.
      dataset: data set name, used only to choose the default preset.
      precision: matmul precision, ``float32``, ``tf32``, ``bf16`` (None: backend default).
      seed: every random choice (split, initialisation, batches, latents) derives from it.
      progress: show progress lines (training epochs, scoring chunks) with rate and ETA.
      n_models: an ensemble of this many models trained as one program (model k with the
        initialisation and batches of seed ``seed + k``, all on the same split); the score
        is the mean of the models' scores, each standardised by its held-out normal scores;
        ``score_details(X)['model_scores']`` holds each model's (K, N).
    """

    # Set by the per-detector classes (AutoEncoder: "ae"), which then take no ``detector``.
    fixed_detector: ClassVar[str | None] = None

    def __init__(self, detector=None, **params):
        unknown = sorted(set(params) - set(_DEFAULTS))
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected parameter(s) {unknown}")
        if self.fixed_detector is None:
            self.detector = detector
        for name, default in _DEFAULTS.items():
            setattr(self, name, params.get(name, default))

    __init__.__signature__ = _signature(with_detector=True)

    # ---- configuration ---------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.fixed_detector or self.detector or DEFAULT_DETECTOR

    def threshold_spec(self) -> thresholds.ThresholdSpec:
        """The threshold rule: ``contamination:C`` when ``contamination`` is set (PyOD's
        meaning: the expected share of anomalies, in (0, 0.5]), else ``threshold``."""
        if self.contamination is None:
            return thresholds.parse_threshold(self.threshold)
        if not isinstance(self.contamination, int | float) or not 0 < self.contamination <= 0.5:
            raise ValueError(f"contamination must be in (0, 0.5], got {self.contamination!r}")
        return thresholds.parse_threshold(f"contamination:{self.contamination}")

    def model_config(self):
        return get_detector(self.name).config(self.preset, self.dataset, **(self.model or {}))

    def train_config(self) -> TrainConfig:
        return TrainConfig(**{name: getattr(self, name) for name in TRAIN_PARAMS})

    # ---- fit / score / predict -------------------------------------------------------

    def fit(self, X, y=None, *, validation_data=None):
        """Trains on ``X`` (N, D), normal samples, and sets ``threshold_``.

        Args:
          X: training data, values in [0, 1].
          y: ignored (unsupervised); accepted for scikit-learn pipelines.
          validation_data: held-out normal samples for the threshold and early stopping;
            None holds out ``validation_fraction`` of ``X`` (seeded).

        Raises:
          ValueError: bad data (NaN/inf, wrong rank, empty, non-numeric) or settings.
        """
        del y
        detector, spec = get_detector(self.name), self.threshold_spec()
        cfg, train = self.model_config(), self.train_config()
        X, x_train, x_val, perm = self._split(X, validation_data)
        model = fitting.fit_calibrated(
            detector,
            cfg,
            train,
            x_train,
            x_val,
            spec=spec,
            seed=self.seed,
            precision=self.precision,
            devices=self.devices,
            progress=self.progress,
            n_models=self.n_models,
        )
        self._set_model(model)
        return self._set_training_scores(X, x_train, perm)

    def _split(self, X, validation_data):
        """``(X, x_train, x_val, perm)``: the checked data, and the part trained on and the
        part held out (``validation_fraction`` of ``X``, seeded; ``validation_data`` instead
        when given; None when nothing is held out). ``perm`` orders ``X`` as held-out rows
        then training rows (None with ``validation_data``)."""
        X = self._validate(X, reset=True)
        _, split_key, _ = fitting.seed_keys(self.seed)
        if validation_data is not None:
            return X, X, check_features(validation_data, X.shape[1], what="validation_data"), None
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        n_val = int(round(self.validation_fraction * len(X)))
        if n_val and len(X) - n_val < 1:
            raise ValueError(f"X has {len(X)} samples: too few to hold out a validation part")
        perm = np.asarray(jax.random.permutation(split_key, len(X)))
        return X, X[perm[n_val:]], (X[perm[:n_val]] if n_val else None), perm

    def _set_training_scores(self, X, x_train, perm, train_scores=None):
        """PyOD's attributes ``decision_scores_`` and ``labels_``: the scores and labels of the
        training data ``X``, in its order (``perm`` from ``_split``). ``train_scores``: the
        scores of ``x_train`` when already computed."""
        model = self.model_
        n_val = len(X) - len(x_train)  # rows held out from X (0: none, or validation_data given)
        if train_scores is None:
            calibrated_on_train = model.calibration == "training"
            train_scores = model.calibration_scores if calibrated_on_train else self._score(x_train)["score"]
        if perm is None:
            scores = np.asarray(train_scores, np.float64)
        else:
            scores = np.empty(len(X), np.float64)
            scores[perm[n_val:]] = train_scores
            scores[perm[:n_val]] = model.calibration_scores[:n_val]
        self.decision_scores_ = scores
        self.labels_ = (scores > self.threshold_).astype(np.int64)
        return self

    def _validate(self, X, *, reset: bool) -> np.ndarray:
        """scikit-learn's input checks (feature count and names, dense, real, finite, at
        least one sample and feature; pandas numeric, nullable and bool columns become float),
        then float32's range."""
        X = validate_data(self, X, reset=reset, dtype=np.float64, accept_sparse=False)
        check_float32_range(X, "X")
        return X.astype(np.float32)

    def _set_model(self, model: fitting.Calibrated) -> None:
        self.model_ = model
        self.fitted_ = model.fitted
        self.threshold_ = model.threshold
        self.validation_scores_ = model.calibration_scores
        self.n_features_in_ = model.fitted.n_features

    def _check_fitted(self):
        check_is_fitted(self, "model_")  # NotFittedError (a ValueError) before fit or load

    def _score(self, X: np.ndarray) -> dict[str, np.ndarray]:
        return fitting.score_details(
            get_detector(self.name),
            self.fitted_,
            X,
            seed=self.seed,
            precision=self.precision,
            devices=self.devices,
            progress=self.progress,
            standardise=self.model_.standardise,
        )

    def score_details(self, X) -> dict[str, np.ndarray]:
        """Every per-sample output of the detector: ``score`` and, where the method has them,
        ``reconstruction`` (in [0, 1]), ``residual``, ``z``, ... Deterministic for a seed.
        A score that overflows float32 (an extreme input) is its largest value, 3.4e38."""
        self._check_fitted()
        return self._score(self._validate(X, reset=False))

    def score_samples(self, X) -> np.ndarray:
        """Anomaly scores (N,), higher = more anomalous."""
        return self.score_details(X)["score"]

    def decision_function(self, X) -> np.ndarray:
        """Anomaly scores (N,), higher = more anomalous (same as ``score_samples``)."""
        return self.score_samples(X)

    def predict(self, X, return_confidence: bool = False):
        """1 where ``decision_function(X) > threshold_`` (anomaly), else 0 (PyOD's labels;
        scikit-learn's outlier detectors return -1 for outliers and +1 for inliers). With
        ``return_confidence``, also ``predict_confidence``'s values: ``(labels, confidence)``."""
        self._check_fitted()
        scores = self.decision_function(X)
        labels = (scores > self.threshold_).astype(np.int64)
        return (labels, self._confidence(scores)) if return_confidence else labels

    def fit_predict(self, X, y=None):
        """``fit(X)``, then the labels of ``X`` (``labels_``)."""
        return self.fit(X, y).labels_

    def predict_proba(self, X, method: str = "linear", return_confidence: bool = False):
        """(N, 2) probabilities of [normal, anomaly], as PyOD computes them from the training
        scores ``decision_scores_``: ``'linear'`` min-max scales the score (clipped to [0, 1]);
        ``'unify'`` is erf((score - mean) / (std * sqrt 2)) clipped to [0, 1] (Kriegel et al.
        2011). With ``return_confidence``: ``(probabilities, confidence)``."""
        self._check_fitted()
        scores, train = self.decision_function(X), self.decision_scores_
        if method == "linear":
            span = train.max() - train.min()
            anomaly = (scores - train.min()) / (span if span > 0 else 1.0)
        elif method == "unify":
            anomaly = erf((scores - train.mean()) / (max(train.std(), 1e-12) * np.sqrt(2)))
        else:
            raise ValueError(f"method must be 'linear' or 'unify', got {method!r}")
        anomaly = np.clip(anomaly, 0.0, 1.0)
        probs = np.stack([1.0 - anomaly, anomaly], axis=1)
        return (probs, self._confidence(scores)) if return_confidence else probs

    def predict_confidence(self, X) -> np.ndarray:
        """How consistently each prediction would be made if the training data were
        perturbed, in [0, 1] (ExCeeD, Perini et al. 2020, as in PyOD): from the share of
        training scores at or below the sample's score and the contamination (the share of
        training samples flagged when ``contamination`` is unset)."""
        self._check_fitted()
        return self._confidence(self.decision_function(X))

    def predict_with_rejection(self, X, T: float = 32, return_stats: bool = False):
        """``predict``'s labels, with -2 where the detector abstains (PyOD's convention): a
        prediction is rejected when its ``predict_confidence`` c has 2|c - 1/2| <= 1 - 2 exp(-T)
        (Perini, Buerkner and Klami, ICML 2023, "Unsupervised Anomaly Detection with
        Rejection"; T = 32 as in PyOD). With ``return_stats``: ``(labels, stats)``, ``stats``
        the share of ``X`` rejected and the share of the training rows that would be.

        Raises:
          ValueError: T <= 0, or not fitted.
        """
        if not T > 0:
            raise ValueError(f"T must be > 0, got {T}")
        self._check_fitted()
        labels, confidence = self.predict(X, return_confidence=True)
        limit = 1.0 - 2.0 * np.exp(-T)

        def rejected(conf):
            return 2.0 * np.abs(conf - 0.5) <= limit

        labels = np.where(rejected(confidence), -2, labels)
        if not return_stats:
            return labels
        train = rejected(self._confidence(self.decision_scores_))
        return labels, {
            "rejection_rate": float(np.mean(labels == -2)),
            "training_rejection_rate": float(train.mean()),
        }

    def _confidence(self, scores: np.ndarray) -> np.ndarray:
        train = np.sort(self.decision_scores_)
        n = len(train)
        contamination = self.contamination if self.contamination is not None else float(self.labels_.mean())
        below = np.searchsorted(train, scores, side="right")  # training scores <= each score
        posterior = (1.0 + below) / (2.0 + n)
        confidence = 1.0 - binom.cdf(n - int(n * contamination), n, posterior)
        flagged = scores > self.threshold_
        return np.where(flagged, confidence, 1.0 - confidence)

    def pvalues(self, X) -> np.ndarray:
        """Conformal p-values of ``X`` against the held-out normal scores (small = anomalous)."""
        self._check_fitted()
        return thresholds.conformal_pvalues(self.validation_scores_, self.decision_function(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "outlier_detector"
        tags.requires_fit = True
        return tags

    # ---- pickling: the optimiser's closures are rebuilt, as ``load`` does ----------------

    def __getstate__(self):
        state = self.__dict__.copy()
        if "model_" in state:
            state["model_"] = fitting.portable(state["model_"])
            state["_train_config"] = self.train_config()
            del state["fitted_"]
        return state

    def __setstate__(self, state):
        train = state.pop("_train_config", None)
        self.__dict__.update(state)
        if "model_" in state:
            self._set_model(fitting.restored(state["model_"], train))

    # ---- persistence -----------------------------------------------------------------

    def save(self, path, *, scaler=None) -> Path:
        """Writes the fitted model to the folder ``path``: parameters, optimiser state,
        config, threshold, the held-out scores, an optional fitted scikit-learn ``scaler``,
        and the versions. ``load(path)`` reads it back on any machine."""
        self._check_fitted()
        settings = {
            k: getattr(self, k)
            for k in (
                "preset",
                "model",
                "validation_fraction",
                "dataset",
                "precision",
                "seed",
                "contamination",
            )
        }
        # as given, so that the loaded estimator's get_params() equals this one's
        settings["threshold"] = self.threshold if isinstance(self.threshold, str) else str(self.threshold)
        settings["estimator_class"] = type(self).__name__
        settings["detector"] = self.detector if self.fixed_detector is None else None
        return fitting.save(
            path,
            self.model_,
            train=self.train_config(),
            settings=settings,
            scaler=scaler,
            decision_scores=self.decision_scores_.tolist(),
        )

    def export(
        self, path, *, scaler=None, platforms: tuple[str, ...] = serving.PLATFORMS, format: str = "stablehlo"
    ) -> Path:
        """Writes the fitted scoring function for serving to the folder ``path``: a serialized
        StableHLO module (``jax.export``, any batch size, lowered for ``platforms``) that maps
        raw rows (N, D) to ``decision_function``'s scores, and ``manifest.json`` with the input
        shape, threshold and versions. ``scaler``: a fitted per-feature affine scikit-learn
        scaler (MinMaxScaler, StandardScaler, ...) folded in, so the module takes unscaled
        data. Calling it needs only ``jax`` (``jax_anomaly.serving``'s docstring shows how).
        ``format="onnx"``: an ONNX model (``scorer.onnx``, dynamic batch axis) for onnxruntime
        instead, for the detectors that draw no random numbers when scoring (AE, AAE,
        f-AnoGAN and their ensembles); needs the ``onnx`` extra.

        Raises:
          ValueError: not fitted, a scaler that is not a per-feature affine map, or an ONNX
            export that cannot be made (see ``serving.export_scorer``).
        """
        self._check_fitted()
        return serving.export_scorer(
            path,
            get_detector(self.name),
            self.fitted_,
            key=fitting.seed_keys(self.seed)[2],
            threshold=self.threshold_,
            standardise=self.model_.standardise,
            scaler=scaler,
            platforms=platforms,
            info={"threshold_spec": str(self.model_.spec), "estimator": type(self).__name__},
            format=format,
        )


def load(path) -> AnomalyDetector:
    """A fitted estimator from a folder written by ``save`` (or a run folder's ``model/``);
    the saved scaler, if any, is ``scaler_``. Raises ``ValueError`` for a missing or corrupt
    folder."""
    manifest, model, train, scaler = fitting.load(path)
    settings = dict(manifest["settings"])
    if isinstance(settings.get("model"), dict):
        settings["model"] = fitting.tuples(settings["model"])
    detector, cls = settings.pop("detector", None), settings.pop("estimator_class", None)
    params = {
        **{name: getattr(train, name) for name in TRAIN_PARAMS},
        "threshold": str(model.spec),  # folders saved before the threshold as given was kept
        **settings,
        "n_models": manifest.get("ensemble", {}).get("n_models", 1),
    }
    if cls == AnomalyDetector.__name__:  # saved as AnomalyDetector(name): load it as that
        est = AnomalyDetector(detector, **params)
    else:
        est = estimator_for(manifest["detector"], **params)
    est._set_model(model)
    # PyOD's training scores (a run folder's model has none: its held-out scores stand in)
    est.decision_scores_ = np.asarray(manifest.get("decision_scores", model.calibration_scores), np.float64)
    est.labels_ = (est.decision_scores_ > est.threshold_).astype(np.int64)
    est.history_ = manifest["history"]
    est.scaler_ = scaler
    est.manifest_ = manifest
    return est


# ---- one class per registered detector ---------------------------------------------------

_CLASSES: dict[str, type[AnomalyDetector]] = {}


def estimator_class(detector: str) -> type[AnomalyDetector]:
    """The estimator class of a registered detector: the class its ``estimator`` names
    (made here on first use), or ``AnomalyDetector`` when it names none."""
    det = get_detector(detector)
    if det.estimator is None:
        return AnomalyDetector
    cls = _CLASSES.get(det.estimator)
    if cls is None or cls.fixed_detector != det.name:
        docs = field_docs(det.config_cls)
        options = "\n".join(f"      {name}: {text}" for name, text in docs.items())
        cls = type(
            det.estimator,
            (AnomalyDetector,),
            {
                "__doc__": f"{det.description[:1].upper()}{det.description[1:]} (detector '{det.name}').\n\n"
                f"    ``AnomalyDetector``'s parameters without ``detector``; ``model={{...}}`` takes\n"
                f"    these options of ``{det.config_cls.__name__}``:\n\n{options}\n",
                "__module__": __name__,
                "__qualname__": det.estimator,
                "fixed_detector": det.name,
            },
        )
        cls.__init__ = _fixed_init()
        _CLASSES[det.estimator] = cls
        globals()[det.estimator] = cls
    return cls


def _fixed_init():
    def __init__(self, **params):
        AnomalyDetector.__init__(self, None, **params)

    __init__.__signature__ = _signature(with_detector=False)
    return __init__


def estimator_for(detector: str, **params) -> AnomalyDetector:
    """An estimator of a registered detector (its own class, or the generic one)."""
    cls = estimator_class(detector)
    return cls(**params) if cls.fixed_detector else AnomalyDetector(detector, **params)


def estimator_names() -> list[str]:
    """Class names of the registered detectors' estimators."""
    return sorted(d.estimator for d in registry().values() if d.estimator)


def __getattr__(name: str):
    """``jax_anomaly.estimators.<Class>`` for any registered detector's estimator (plugins
    included), so that pickles and imports find classes made on first use."""
    for det in registry().values():
        if det.estimator == name:
            return estimator_class(det.name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


for _name in list(registry()):
    estimator_class(_name)
