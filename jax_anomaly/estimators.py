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
[-1, 1] themselves. The CLI and the experiments run through these classes (``runner``).
"""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator

from jax_anomaly import persistence, thresholds
from jax_anomaly.config import TrainConfig, matmul_precision, to_dict

# Threshold rules that use the test data itself cannot be fitted; the runner reports them.
FITTABLE_THRESHOLDS = ("percentile", "mean_std", "contamination", "fpr")
# The estimator parameters that are ``TrainConfig`` fields of the same name.
TRAIN_PARAMS = (
    "epochs",
    "batch_size",
    "learning_rate",
    "b1",
    "b2",
    "patience",
    "drop_remainder",
    "unroll",
    "devices",
    "checkpoint",
    "checkpoint_every",
    "resume",
)


class AnomalyDetector(BaseEstimator):
    """A registered detector behind ``fit`` / ``decision_function`` / ``predict``.

    Args:
      detector: registry name (``ae``, ``anogan``, ...); the subclasses fix it.
      preset: the detector's preset (None: its default for ``dataset``).
      model: overrides of the detector config, e.g. ``{"hidden": (64,), "latent": 8}``.
      epochs, batch_size, learning_rate, b1, b2, patience, drop_remainder, unroll: training
        (``TrainConfig``; ``TRAIN_PARAMS`` lists the fields taken from it).
      threshold: threshold rule on held-out normal scores: ``percentile:Q``, ``mean_std:K``,
        ``contamination:C`` or ``fpr:A`` (conformal, false-positive rate <= A).
      contamination: if set, overrides ``threshold`` with ``contamination:C``.
      validation_fraction: share of ``X`` held out (seeded) for the threshold and early
        stopping; 0 uses the training scores for the threshold.
      dataset: data set name, used only to choose the default preset.
      devices: train and score over the first N devices (None: all).
      precision: matmul precision, ``float32``, ``tf32``, ``bf16`` (None: backend default).
      seed: every random choice (split, initialisation, batches, latents) derives from it.
      checkpoint, checkpoint_every, resume: a checkpoint file written every
        ``checkpoint_every`` epochs (default 1), and whether to continue from it.
      progress: show the training progress line.
    """

    # Set by the subclasses (AutoEncoder: "ae"), which then take no ``detector`` argument.
    fixed_detector: ClassVar[str | None] = None

    def __init__(
        self,
        detector: str | None = None,
        *,
        preset: str | None = None,
        model: dict | None = None,
        epochs: int = 20,
        batch_size: int = 128,
        learning_rate: float = 1e-3,
        b1: float | None = None,
        b2: float = 0.999,
        patience: int | None = None,
        drop_remainder: bool = False,
        unroll: int = 1,
        threshold: str = thresholds.DEFAULT_THRESHOLD,
        contamination: float | None = None,
        validation_fraction: float = 0.1,
        dataset: str = "",
        devices: int | None = None,
        precision: str | None = None,
        seed: int = 0,
        checkpoint: str | None = None,
        checkpoint_every: int | None = None,
        resume: bool = False,
        progress: bool = False,
    ):
        if self.fixed_detector is None:
            self.detector = detector
        self.preset = preset
        self.model = model
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.b1 = b1
        self.b2 = b2
        self.patience = patience
        self.drop_remainder = drop_remainder
        self.unroll = unroll
        self.threshold = threshold
        self.contamination = contamination
        self.validation_fraction = validation_fraction
        self.dataset = dataset
        self.devices = devices
        self.precision = precision
        self.seed = seed
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.resume = resume
        self.progress = progress

    # ---- configuration ---------------------------------------------------------------

    @property
    def name(self) -> str:
        name = self.fixed_detector or self.detector
        if name is None:
            raise ValueError("AnomalyDetector needs detector=... (e.g. 'ae'), or use a subclass")
        return name

    def _detector(self):
        from jax_anomaly.detectors import get_detector

        return get_detector(self.name)

    def threshold_spec(self) -> thresholds.ThresholdSpec:
        spec = thresholds.parse_threshold(
            f"contamination:{self.contamination}" if self.contamination is not None else self.threshold
        )
        if spec.kind not in FITTABLE_THRESHOLDS:
            raise ValueError(
                f"threshold '{spec}' needs test scores or labels; an estimator fits one of "
                f"{', '.join(k + ':...' for k in FITTABLE_THRESHOLDS)}"
            )
        return spec

    def model_config(self):
        return self._detector().config(self.preset, self.dataset, **(self.model or {}))

    def train_config(self) -> TrainConfig:
        return TrainConfig(**{name: getattr(self, name) for name in TRAIN_PARAMS})

    def _keys(self):
        """``(fit, validation split, score)`` keys, all from ``seed``."""
        import jax

        if not isinstance(self.seed, int | np.integer) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        fit_key, rest = jax.random.split(jax.random.key(self.seed))
        split_key, score_key = jax.random.split(rest)
        return fit_key, split_key, score_key

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
        import jax

        from jax_anomaly.detectors.base import check_features

        del y
        detector, spec = self._detector(), self.threshold_spec()
        cfg, train = self.model_config(), self.train_config()
        matmul_precision(self.precision)  # validates the name before any work
        X = check_features(X, what="X")
        fit_key, split_key, _ = self._keys()
        if validation_data is not None:
            x_train, x_val = X, check_features(validation_data, X.shape[1], what="validation_data")
        elif not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        else:
            n_val = int(round(self.validation_fraction * len(X)))
            if n_val and len(X) - n_val < 1:
                raise ValueError(f"X has {len(X)} samples: too few to hold out a validation part")
            perm = np.asarray(jax.random.permutation(split_key, len(X)))
            x_train, x_val = X[perm[n_val:]], X[perm[:n_val]]
        with matmul_precision(self.precision):
            self.fitted_ = detector.fit(
                cfg,
                train,
                detector.to_input(x_train),
                detector.to_input(x_val),
                key=fit_key,
                progress=self.progress,
            )
            calibration = x_val if len(x_val) else x_train
            t0 = time.perf_counter()
            self.validation_scores_ = self.score_samples(calibration)
            self.validation_seconds_ = time.perf_counter() - t0
        self.threshold_ = thresholds.select_threshold(spec, val_scores=self.validation_scores_)
        self.threshold_source_ = "validation" if len(x_val) else "training"
        self.n_features_in_ = X.shape[1]
        return self

    def _check_fitted(self):
        if not hasattr(self, "fitted_"):
            raise ValueError(f"this {type(self).__name__} is not fitted yet: call fit(X) or load(path) first")

    def score_details(self, X) -> dict[str, np.ndarray]:
        """Every per-sample output of the detector: ``score`` and, where the method has them,
        ``reconstruction`` (in [0, 1]), ``residual``, ``z``, ... Deterministic for a seed."""
        from jax_anomaly.detectors.base import check_features

        self._check_fitted()
        detector = self._detector()
        X = check_features(X, self.fitted_.n_features, what="X")
        with matmul_precision(self.precision):
            out = detector.score(
                self.fitted_, detector.to_input(X), key=self._keys()[2], devices=self.devices
            )
        if "reconstruction" in out:
            out["reconstruction"] = detector.from_input(out["reconstruction"])
        return out

    def score_samples(self, X) -> np.ndarray:
        """Anomaly scores (N,), higher = more anomalous."""
        return self.score_details(X)["score"]

    def decision_function(self, X) -> np.ndarray:
        """Anomaly scores (N,), higher = more anomalous (same as ``score_samples``)."""
        return self.score_samples(X)

    def predict(self, X) -> np.ndarray:
        """1 where ``decision_function(X) > threshold_`` (anomaly), else 0."""
        self._check_fitted()
        return (self.decision_function(X) > self.threshold_).astype(np.int64)

    def pvalues(self, X) -> np.ndarray:
        """Conformal p-values of ``X`` against the held-out normal scores (small = anomalous)."""
        self._check_fitted()
        return thresholds.conformal_pvalues(self.validation_scores_, self.decision_function(X))

    # ---- persistence -----------------------------------------------------------------

    def save(self, path, *, scaler=None) -> Path:
        """Writes the fitted model to the folder ``path``: parameters, optimiser state,
        config, threshold, the held-out scores, an optional fitted scikit-learn ``scaler``,
        and the package version. ``load(path)`` reads it back on any machine."""
        from jax_anomaly import __version__
        from jax_anomaly.runner import versions

        self._check_fitted()
        manifest = {
            "jax_anomaly": __version__,
            "estimator": type(self).__name__,
            "detector": self.name,
            "params": _jsonable(self.get_params()),
            "model_config": to_dict(self.fitted_.config),
            "n_features": self.fitted_.n_features,
            "threshold": {"spec": str(self.threshold_spec()), "value": self.threshold_},
            "threshold_source": self.threshold_source_,
            "validation_scores": np.asarray(self.validation_scores_).tolist(),
            "history": self.fitted_.result.history if self.fitted_.result else [],
            "saved_with": versions(),
        }
        return persistence.save_model(
            path, manifest=manifest, params=self.fitted_.params, state=self.fitted_.state, scaler=scaler
        )


def load(path) -> AnomalyDetector:
    """A fitted estimator from a folder written by ``save``; the saved scaler, if any, is
    ``scaler_``. Raises ``ValueError`` for a missing or corrupt folder."""
    import jax

    from jax_anomaly.detectors import Fitted, get_detector

    manifest, payload = persistence.load_model(path)
    try:
        cls = _ESTIMATORS.get(manifest["estimator"], AnomalyDetector)
        params = {**manifest["params"], "checkpoint": None, "resume": False}
        if isinstance(params.get("model"), dict):
            params["model"] = {k: tuple(v) if isinstance(v, list) else v for k, v in params["model"].items()}
        est = cls(**params)
        detector = get_detector(manifest["detector"])
        cfg = detector.config_cls(**manifest["model_config"])
        n_features = int(manifest["n_features"])
        state = payload.get("state")
        if state is not None and detector.init_state is not None:
            template = detector.init_state(cfg, est.train_config(), n_features, jax.random.key(0))
            state = persistence.restore_into(template, state, what=f"model state {path}")
        est.fitted_ = Fitted(manifest["detector"], cfg, payload["params"], None, n_features, state=state)
        est.threshold_ = float(manifest["threshold"]["value"])
        est.threshold_source_ = manifest["threshold_source"]
        est.validation_scores_ = np.asarray(manifest["validation_scores"], np.float64)
        est.n_features_in_ = n_features
        est.history_ = manifest["history"]
        est.scaler_ = persistence.scaler_from_dict(payload.get("scaler"))
        est.manifest_ = manifest
    except (KeyError, TypeError) as e:
        raise ValueError(f"saved model {path} is incomplete or from another version: {e!r}") from None
    return est


def _jsonable(params: dict) -> dict:
    return json.loads(json.dumps(params, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))


def _fixed_init():
    """An ``__init__`` for a subclass bound to one detector: the base signature without
    ``detector`` (scikit-learn's get_params reads the signature)."""
    base = inspect.signature(AnomalyDetector.__init__)

    def __init__(self, **params):
        AnomalyDetector.__init__(self, None, **params)

    __init__.__signature__ = base.replace(
        parameters=[p for n, p in base.parameters.items() if n != "detector"]
    )
    return __init__


class AutoEncoder(AnomalyDetector):
    """Dense autoencoder; score = per-sample reconstruction error (MSE or BCE)."""

    fixed_detector = "ae"
    __init__ = _fixed_init()


class AnoGAN(AnomalyDetector):
    """GAN + AnoGAN latent search; score = the search's final loss."""

    fixed_detector = "anogan"
    __init__ = _fixed_init()


class VAE(AnomalyDetector):
    """Variational autoencoder; score = -log reconstruction probability (or ELBO, error)."""

    fixed_detector = "vae"
    __init__ = _fixed_init()


class AdversarialAutoEncoder(AnomalyDetector):
    """Adversarial autoencoder; score = reconstruction error (+ optional prior term)."""

    fixed_detector = "aae"
    __init__ = _fixed_init()


class FAnoGAN(AnomalyDetector):
    """GAN + f-AnoGAN encoder; score = izi_f loss, one forward pass per sample."""

    fixed_detector = "fanogan"
    __init__ = _fixed_init()


_ESTIMATORS: dict[str, type[AnomalyDetector]] = {
    cls.__name__: cls for cls in (AnomalyDetector, AutoEncoder, AnoGAN, VAE, AdversarialAutoEncoder, FAnoGAN)
}


def estimator_for(detector: str, **params) -> AnomalyDetector:
    """The estimator class of a registered detector (the generic one when it has none)."""
    for cls in _ESTIMATORS.values():
        if cls.fixed_detector == detector:
            return cls(**params)
    return AnomalyDetector(detector, **params)
