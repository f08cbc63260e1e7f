"""Fitted detectors exported for serving: the whole scoring function (an affine scaler, the
detector's input mapping, its random draws, the network or AnoGAN's latent search, an
ensemble's combination) as one serialized StableHLO module (``jax.export``), with a JSON
manifest. Loading and calling it needs only ``jax``, not this package:

    import json, jax, numpy as np
    scorer = jax.export.deserialize(open("exported/scorer.stablehlo", "rb").read())
    manifest = json.load(open("exported/manifest.json"))
    scores = np.asarray(scorer.call(x.astype(np.float32)))   # x: (any N, D) raw features
    flagged = scores > manifest["threshold"]

The batch size is symbolic (one module serves any N); the module is lowered for CPU and CUDA
by default. ``load_exported`` here wraps the same calls.

``format="onnx"`` writes the same function as an ONNX model instead (the ``onnx`` extra:
jax2onnx converts it, onnxruntime runs it; a dynamic batch axis too)::

    import onnxruntime as ort
    session = ort.InferenceSession("exported/scorer.onnx")
    scores = session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]

ONNX covers the detectors whose scorers draw no random numbers: the autoencoder, the AAE,
f-AnoGAN and their ensembles. The VAE's Monte-Carlo draws and AnoGAN's random initial latents
(PRNG keys in the graph) have no ONNX converter in jax2onnx 0.17: they export as StableHLO only.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jax_anomaly.config import to_dict
from jax_anomaly.detectors import Detector, Fitted
from jax_anomaly.detectors.base import FLOAT32_MAX
from jax_anomaly.detectors.stack import FittedStack, hyper_sample_scorer
from jax_anomaly.environment import versions

MODULE, ONNX_MODULE, MANIFEST = "scorer.stablehlo", "scorer.onnx", "manifest.json"
PLATFORMS = ("cpu", "cuda")
FORMATS = {"stablehlo": "jax.export StableHLO", "onnx": "ONNX (jax2onnx)"}
ONNX_OPSET = 23


def affine_of(scaler, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)`` with ``scaler.transform(x) == a * x + b`` per feature: the fitted
    scikit-learn scaler folded into the exported graph (MinMaxScaler, StandardScaler,
    MaxAbsScaler, RobustScaler, ...).

    Raises:
      ValueError: the scaler is not a per-feature affine map (e.g. ``clip=True``, a
        quantile transform) or has another feature count.
    """
    try:
        b = np.asarray(scaler.transform(np.zeros((1, n_features))), np.float64)[0]
        a = np.asarray(scaler.transform(np.ones((1, n_features))), np.float64)[0] - b
        # probes near and far (a clipping scaler is affine only inside the data's range)
        probe = np.random.default_rng(0).normal(0.0, 1.0, (8, n_features)) * np.array([[3.0], [1e3]]).repeat(
            4, 0
        )
        out = np.asarray(scaler.transform(probe), np.float64)
    except Exception as e:  # noqa: BLE001 (any scaler's own error, reported with its cause)
        raise ValueError(f"scaler {scaler!r} cannot transform {n_features} features: {e}") from e
    if out.shape != probe.shape or not np.allclose(out, probe * a + b, rtol=1e-6, atol=1e-9):
        raise ValueError(
            f"scaler {scaler!r} is not a per-feature affine map (a * x + b): only such scalers fold "
            "into an exported scorer; apply it before calling the scorer instead"
        )
    return a, b


def scoring_function(detector: Detector, fitted: Fitted | FittedStack, *, key, standardise=None, affine=None):
    """``x (N, D) float32 -> scores (N,) float32``: what the estimator's ``decision_function``
    computes, as one traceable function with the parameters as constants. ``affine``: a
    scaler's ``(a, b)`` applied first; ``standardise``: an ensemble's ``(mean, std)``."""
    n_features = fitted.n_features

    def fn(x):
        if affine is not None:
            x = x * jnp.asarray(affine[0], jnp.float32) + jnp.asarray(affine[1], jnp.float32)
        x = detector.to_input(x)
        if isinstance(fitted, FittedStack):
            cfg = fitted.configs[0]
            extra = detector.score_inputs(cfg, x, key) if detector.score_inputs else ()
            names = tuple(fitted.hyper)
            hyper = tuple(jnp.asarray(fitted.hyper[n], jnp.float32) for n in names)
            one = hyper_sample_scorer(detector.make_sample_scorer, cfg, names, n_features)
            per_row = jax.vmap(one, in_axes=(None, None, 0, *(0,) * len(extra)))
            scores = jax.vmap(per_row, in_axes=(0, 0, None, *(None,) * len(extra)))(
                fitted.params, hyper, x, *extra
            )["score"]
            if standardise is not None:
                mean, std = (jnp.asarray(a, jnp.float32)[:, None] for a in standardise)
                scores = (scores - mean) / std
            score = scores.mean(axis=0)
        else:
            extra = detector.score_inputs(fitted.config, x, key) if detector.score_inputs else ()
            one = detector.make_sample_scorer(fitted.config, n_features)
            score = jax.vmap(one, in_axes=(None, 0, *(0,) * len(extra)))(fitted.params, x, *extra)["score"]
        return jnp.nan_to_num(score, nan=FLOAT32_MAX, posinf=FLOAT32_MAX, neginf=-FLOAT32_MAX)

    return fn


def export_scorer(
    path,
    detector: Detector,
    fitted: Fitted | FittedStack,
    *,
    key,
    threshold: float,
    standardise=None,
    scaler=None,
    platforms: tuple[str, ...] = PLATFORMS,
    info: dict | None = None,
    format: str = "stablehlo",
) -> Path:
    """Writes ``path/scorer.stablehlo`` (the serialized ``jax.export`` module, batch size
    symbolic) or, with ``format="onnx"``, ``path/scorer.onnx`` (``onnx_model``), and
    ``path/manifest.json`` (input shape and dtype, threshold, detector, config, scaler,
    platforms, versions; ``info``: more entries).

    Raises:
      ValueError: a scaler that does not fold (``affine_of``); an unknown format; for ONNX,
        the extra not installed or a scorer with random draws.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown export format '{format}'; expected one of {sorted(FORMATS)}")
    affine = None if scaler is None else affine_of(scaler, fitted.n_features)
    fn = scoring_function(detector, fitted, key=key, standardise=standardise, affine=affine)
    (batch,) = jax.export.symbolic_shape("batch")
    spec = jax.ShapeDtypeStruct((batch, fitted.n_features), jnp.float32)
    path = Path(path)
    if format == "onnx":
        if detector.score_inputs is not None:
            raise ValueError(
                f"detector '{detector.name}' draws random numbers when scoring (PRNG keys in the graph), "
                "which jax2onnx cannot convert: export it as StableHLO (the default format)"
            )
        payload = onnx_model(fn, spec).SerializeToString()
        module, targets, convention = ONNX_MODULE, ["onnxruntime"], None
    else:
        exported = jax.export.export(jax.jit(fn), platforms=platforms)(spec)
        payload = exported.serialize()
        module, targets = MODULE, list(exported.platforms)
        convention = exported.calling_convention_version
    path.mkdir(parents=True, exist_ok=True)
    (path / module).write_bytes(payload)
    config = fitted.configs[0] if isinstance(fitted, FittedStack) else fitted.config
    manifest = {
        "format": FORMATS[format],
        "module": module,
        "input": {"shape": [None, fitted.n_features], "dtype": "float32"},
        "output": {"shape": [None], "dtype": "float32", "meaning": "anomaly score, higher = more anomalous"},
        "threshold": float(threshold),
        "flagged_when": "score > threshold",
        "detector": detector.name,
        "model_config": to_dict(config),
        "n_models": fitted.n_models if isinstance(fitted, FittedStack) else 1,
        "scaler": None
        if scaler is None
        else {"class": type(scaler).__name__, "scale": affine[0].tolist(), "offset": affine[1].tolist()},
        "platforms": targets,
        "calling_convention_version": convention,
        "exported_with": versions(),
        **(info or {}),
    }
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return path


def onnx_model(fn, spec: jax.ShapeDtypeStruct):
    """``fn`` (``scoring_function``) as an ONNX ``ModelProto`` with ``spec``'s symbolic batch
    axis. ``fn`` is traced to a jaxpr first, so jax2onnx sees plain lax primitives (its own
    Flax layer converters have no vmap rule, and the per-sample scorers are vmapped), with
    the same symbolic batch dimension in the trace and in the conversion.

    Raises:
      ValueError: jax2onnx is not installed (``pip install 'jax-anomaly[onnx]'``).
    """
    try:
        from jax2onnx import to_onnx
    except ImportError as e:
        raise ValueError("ONNX export needs jax2onnx: pip install 'jax-anomaly[onnx]'") from e
    from jax.extend.core import jaxpr_as_fun

    graph = jaxpr_as_fun(jax.make_jaxpr(fn)(spec))
    return to_onnx(lambda x: graph(x)[0], [spec], model_name="jax_anomaly_scorer", opset=ONNX_OPSET)


@dataclasses.dataclass(frozen=True)
class ExportedScorer:
    """An exported scorer read back: ``scores = scorer(x)``; ``predict(x)`` flags
    ``score > threshold``; ``manifest`` holds the rest."""

    exported: jax.export.Exported
    manifest: dict

    @property
    def threshold(self) -> float:
        return float(self.manifest["threshold"])

    def __call__(self, x) -> np.ndarray:
        x = np.asarray(x, np.float32)
        d = self.manifest["input"]["shape"][1]
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(f"the exported scorer takes (N, {d}) arrays, got shape {x.shape}")
        return np.asarray(self.exported.call(x))

    def predict(self, x) -> np.ndarray:
        return (self(x) > self.threshold).astype(np.int64)


def load_exported(path) -> ExportedScorer:
    """An exported StableHLO scorer from the folder ``export_scorer`` wrote (an ONNX one is
    loaded with onnxruntime: the module docstring shows how).

    Raises:
      ValueError: a missing or unreadable folder.
    """
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        if manifest["module"] != MODULE:
            raise ValueError(f"its module is {manifest['module']}: load an ONNX scorer with onnxruntime")
        exported = jax.export.deserialize(bytearray((path / manifest["module"]).read_bytes()))
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"{path} is not an exported scorer folder: {e}") from None
    return ExportedScorer(exported, manifest)
