"""Transformation prediction (GEOM, Golan & El-Yaniv 2018): a classifier learns which of K
geometric transformations (flips, translations, quarter turns) was applied to a normal
image; a test image is anomalous when its K transformed copies are recognised poorly.

Training draws nothing from disk: each step makes the K copies of its batch on the device
(``transform_images``) and the classifier sees all K * B of them. A second, gradient-free
phase (``calibrate``: one pass over the training rows) collects what the scores need from the
trained classifier: the mean log-probabilities of each transformation's softmax outputs (the
sufficient statistic of GEOM's Dirichlet fit) and the mean feature vector of each
transformation (the centres of GOAD, Bergman & Hoshen 2020).

Scores (``GeomConfig.score``; the scorer returns all three, each higher = more anomalous):
  dirichlet: GEOM's: minus the log-likelihood, up to a constant, of the K softmax vectors
    under the Dirichlet distribution fitted per transformation on the training rows.
  ce: minus the mean log-probability of the applied transformation (GEOM's simplified score).
  centres: GOAD's: minus the mean log-probability of the applied transformation when the
    logits are minus the squared distances of the features to the K centres.
  distance: the mean squared distance of each copy's features to its own transformation's
    centre (no softmax: a row far from everything normal stays far, where the two scores
    above can find it recognised all the more confidently).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax.training import train_state
from jax.scipy.special import digamma, polygamma

from jax_anomaly.config import TrainConfig, replace
from jax_anomaly.detectors.base import Detector, Phase, adam, register
from jax_anomaly.models import ConvClassifier
from jax_anomaly.training import masked_mean

SCORES = ("dirichlet", "ce", "centres", "distance", "mahalanobis")
ROTATIONS = (1, 2, 4)


@dataclasses.dataclass(frozen=True)
class GeomConfig:
    """K geometric transformations and the classifier that tells them apart.

    Attributes:
      flips: include the left-right mirror of every transformation (x2).
      shift: translation in pixels: each image is also moved by -shift, 0, +shift along
        each axis, reflected at the border (x9); 0: no translations.
      rotations: quarter turns: 1 (none), 2 (0, 180 degrees) or 4 (0, 90, 180, 270).
      channels: output channels of the classifier's 3x3 convolutions, e.g. 16,32,32,64,64.
      strides: the stride of each convolution (1 or 2), as many as channels.
      score: dirichlet (GEOM), ce (GEOM's simplified score), centres (GOAD's distance to
        the transformation centres), distance (to the own centre) or mahalanobis (each copy's
        features against a Gaussian fitted to that transformation's normal features).
      score_batch: samples per vmapped scoring chunk (each is K images).
    """

    flips: bool = True
    shift: int = 0
    rotations: int = 4
    channels: tuple[int, ...] = (16, 32, 32, 64, 64)
    strides: tuple[int, ...] = (1, 2, 1, 2, 1)
    score: str = "dirichlet+mahalanobis"
    score_batch: int = 256

    def __post_init__(self):
        for name in ("channels", "strides"):  # lists from JSON or the CLI
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if self.rotations not in ROTATIONS:
            raise ValueError(f"rotations must be one of {ROTATIONS}, got {self.rotations}")
        if self.shift < 0:
            raise ValueError(f"shift must be >= 0 pixels, got {self.shift}")
        if self.n_transforms < 2:
            raise ValueError("geom needs at least 2 transformations (flips, shift or rotations > 1)")
        if not self.channels or any(c < 1 for c in self.channels):
            raise ValueError(f"channels must be >= 1, got {tuple(self.channels)}")
        if len(self.strides) != len(self.channels) or any(s not in (1, 2) for s in self.strides):
            raise ValueError(
                f"strides must be 1 or 2, one per entry of channels; got {tuple(self.strides)} "
                f"for channels {tuple(self.channels)}"
            )
        check_scoring(self)

    @property
    def n_transforms(self) -> int:
        """K: (2 with flips) x (9 with a shift) x rotations."""
        return (2 if self.flips else 1) * (9 if self.shift else 1) * self.rotations


def score_parts(score: str) -> tuple[str, ...]:
    """The scores a ``score`` setting names: one of ``SCORES``, or several joined by ``+``
    (their mean after each is standardised by its mean and std over the training rows)."""
    return tuple(score.split("+"))


def check_scoring(cfg) -> None:
    """Validates a transformation-prediction config's ``score`` and ``score_batch``."""
    parts = score_parts(cfg.score)
    if any(p not in SCORES for p in parts) or len(set(parts)) != len(parts):
        raise ValueError(
            f"unknown score '{cfg.score}'; expected one of {SCORES}, or several of them joined by '+'"
        )
    if cfg.score_batch < 1:
        raise ValueError(f"score_batch must be >= 1, got {cfg.score_batch}")


def image_side(n_features: int, cfg: GeomConfig) -> int:
    """The side of the square grey images of ``n_features`` pixels.

    Raises:
      ValueError: not a square image, or one too small for the shift.
    """
    side = math.isqrt(n_features)
    if side * side != n_features:
        raise ValueError(
            f"geom needs square single-channel images (rows of side**2 pixels); got {n_features} features"
        )
    if cfg.shift >= side:
        raise ValueError(f"shift {cfg.shift} must be smaller than the image side {side}")
    return side


def transform_images(images: jax.Array, cfg: GeomConfig) -> jax.Array:
    """The K transformed copies ``(K, B, H, W)`` of square images ``(B, H, W)``; transformation
    ``k`` is (flip, x shift, y shift, quarter turns) in that nesting order, the identity first:
    the mirror (left-right) outermost, then the shift along the rows (-s, 0, +s with reflection
    at the border; content moves down for +s), along the columns (right for +s), then
    ``k % rotations`` quarter turns counter-clockwise (``jnp.rot90``; 180 degrees when
    ``rotations`` is 2)."""
    s, h, w = cfg.shift, images.shape[1], images.shape[2]
    offsets = (0, s, -s) if s else (0,)
    padded = jnp.pad(images, ((0, 0), (s, s), (s, s)), mode="reflect") if s else images
    turns = {1: (0,), 2: (0, 2), 4: (0, 1, 2, 3)}[cfg.rotations]
    out = []
    for flip in (False, True) if cfg.flips else (False,):
        for dy in offsets:
            for dx in offsets:
                t = padded[:, s - dy : s - dy + h, s - dx : s - dx + w]
                if flip:
                    t = t[:, :, ::-1]
                out.extend(jnp.rot90(t, r, axes=(1, 2)) for r in turns)
    return jnp.stack(out)


def build_model(cfg: GeomConfig, n_features: int) -> ConvClassifier:
    side = image_side(n_features, cfg)
    return ConvClassifier((side, side, 1), tuple(cfg.channels), tuple(cfg.strides), cfg.n_transforms)


def _copies(cfg: GeomConfig, x: jax.Array) -> jax.Array:
    """Rows ``(B, D)`` -> their K transformed copies as rows ``(K, B, D)``."""
    side = math.isqrt(x.shape[-1])
    return transform_images(x.reshape((-1, side, side)), cfg).reshape((cfg.n_transforms, -1, x.shape[-1]))


def geom_forward(cfg: GeomConfig, n_features: int):
    """``forward(params, x) -> (log p (K, B, K), features (K, B, F))`` of the K copies of rows
    ``x`` (B, D)."""
    model = build_model(cfg, n_features)

    def forward(params, x):
        logits, features = model.apply({"params": params}, _copies(cfg, x))
        return jax.nn.log_softmax(logits), features

    return forward


def geom_init(cfg: GeomConfig, n_features: int, key: jax.Array):
    return build_model(cfg, n_features).init(key, jnp.zeros((1, n_features), jnp.float32))["params"]


# ---- transformation prediction, whatever the transformations (geom here, goad for tables) ----
# A method supplies ``forward(cfg, n_features) -> (params, x) -> (log p, features)`` and
# ``init(cfg, n_features, key) -> params``; the phases and the scorer below are shared.


def applied(values: jax.Array) -> jax.Array:
    """``(K, B, K) -> (K, B)``: each copy's entry for the transformation applied to it (its
    log-probability, or its distance to its own centre)."""
    k = values.shape[0]
    return jnp.take_along_axis(values, jnp.arange(k)[:, None, None], axis=-1)[..., 0]


def classification_loss(log_p, features, mask):
    """The mean over the K copies of each row's cross-entropy, masked rows excluded."""
    del features
    return masked_mean(-applied(log_p).mean(axis=0), mask)


def _classification(cfg):
    return classification_loss


def training_phase(forward, init, loss=_classification) -> Phase:
    """The training phase: Adam on ``loss(cfg)(log_p, features, mask)`` of every row's K
    copies (default: ``classification_loss``)."""

    def init_state(cfg, train: TrainConfig, n_features: int, key):
        params = init(cfg, n_features, key)
        return train_state.TrainState.create(apply_fn=None, params=params, tx=adam(train))

    def make_step(cfg, train: TrainConfig, n_features: int):
        fwd, objective = forward(cfg, n_features), loss(cfg)

        def step(state, batch, mask, key):
            del key  # the K copies are every transformation of every row: nothing drawn

            def loss_fn(params):
                return objective(*fwd(params, batch), mask)

            value, grads = jax.value_and_grad(loss_fn)(state.params)
            return state.apply_gradients(grads=grads), {"loss": value}

        return step

    def make_eval(cfg, n_features: int):
        fwd, objective = forward(cfg, n_features), loss(cfg)

        def eval_fn(state, x):
            return {"loss": objective(*fwd(state.params, x), jnp.ones(x.shape[0]))}

        return eval_fn

    return Phase("train", init_state, make_step, make_eval)


def calibration_phase(forward, feature_size) -> Phase:
    """The gradient-free second phase: one pass over the training rows summing what the
    scores need (``scoring_params`` turns the sums into the scorer's parameters).
    ``feature_size(cfg) -> F``."""

    def init_state(cfg, train: TrainConfig, n_features: int, key, *, previous):
        del train, key
        k, f = cfg.n_transforms, feature_size(cfg)
        return {
            "params": previous,
            "log_p": jnp.zeros((k, k)),
            "features": jnp.zeros((k, f)),
            "outer": jnp.zeros((k, f, f)),
            "count": jnp.zeros(()),
        }

    def make_step(cfg, train: TrainConfig, n_features: int):
        fwd = forward(cfg, n_features)

        def step(state, batch, mask, key):
            del key
            log_p, features = fwd(state["params"], batch)
            weights = mask[None, :, None]
            new = {
                "params": state["params"],
                "log_p": state["log_p"] + jnp.sum(log_p * weights, axis=1),
                "features": state["features"] + jnp.sum(features * weights, axis=1),
                "outer": state["outer"] + jnp.einsum("kbf,kbg->kfg", features * weights, features),
                "count": state["count"] + jnp.sum(mask),
            }
            return new, {"loss": classification_loss(log_p, features, mask)}

        return step

    return Phase("calibrate", init_state, make_step, params_of=scoring_params, train_config=statistics_train)


def inverse_digamma(y: jax.Array, newton_steps: int = 5) -> jax.Array:
    """``x`` with ``digamma(x) = y``: Minka's starting point and Newton steps."""
    x = jnp.where(y >= -2.22, jnp.exp(y) + 0.5, -1.0 / (y - digamma(1.0)))
    for _ in range(newton_steps):
        x = jnp.maximum(x - (digamma(x) - y) / polygamma(1, x), 1e-6)
    return x


def dirichlet_mle(mean_log_p: jax.Array, iterations: int = 200) -> jax.Array:
    """Maximum-likelihood Dirichlet concentrations ``(..., K)`` from the mean log-probability
    vectors of the observations (Minka's fixed point, as GEOM fits them)."""

    def body(_, alpha):
        return inverse_digamma(digamma(alpha.sum(-1, keepdims=True)) + mean_log_p)

    return jax.lax.fori_loop(0, iterations, body, jnp.ones_like(mean_log_p))


# Ridge added to each transformation's feature covariance before it is inverted, as a share
# of its mean variance (the features of a small network can be nearly collinear).
RIDGE = 1e-2


def precisions(outer: jax.Array, centres: jax.Array, count: jax.Array) -> jax.Array:
    """``(K, F, F)``: the inverse of each transformation's feature covariance (from the sums of
    outer products and the means), with ``RIDGE`` x its mean variance on the diagonal."""
    f = centres.shape[-1]
    cov = outer / count - centres[:, :, None] * centres[:, None, :]
    scale = jnp.trace(cov, axis1=-2, axis2=-1)[:, None, None] / f
    return jnp.linalg.inv(cov + (RIDGE * scale + 1e-6) * jnp.eye(f))


def scoring_params(state: dict) -> dict:
    """The scorer's parameters from the calibrate phase's sums: the classifier (``net``), the
    Dirichlet concentrations per transformation ``alpha`` (K, K), the transformation
    ``centres`` (K, F) and the inverse feature covariances ``precision`` (K, F, F)."""
    count = jnp.maximum(state["count"], 1.0)
    centres = state["features"] / count
    return {
        "net": state["params"],
        "alpha": dirichlet_mle(state["log_p"] / count),
        "centres": centres,
        "precision": precisions(state["outer"], centres, count),
    }


def statistics_train(cfg, train: TrainConfig) -> TrainConfig:
    """One pass, no early stopping: the calibrate phase only sums."""
    return replace(train, epochs=1, patience=None)


def square_distances(features: jax.Array, centres: jax.Array) -> jax.Array:
    """``(..., F), (C, F) -> (..., C)``: squared Euclidean distances as a matrix product
    (no ``(..., C, F)`` difference tensor), clipped at 0 against rounding."""
    cross = features @ centres.T
    return jnp.maximum(
        jnp.sum(jnp.square(features), axis=-1, keepdims=True)
        - 2.0 * cross
        + jnp.sum(jnp.square(centres), axis=-1),
        0.0,
    )


def _parts_of(forward, cfg, n_features: int):
    """``parts(params, x) -> {name: value}`` of every score in ``SCORES`` for one row ``x``."""
    fwd = forward(cfg, n_features)

    def parts(params, x):
        log_p, features = fwd(params["net"], x[None])
        log_p, features = log_p[:, 0], features[:, 0]  # (K, K), (K, F)
        dist = square_distances(features, params["centres"])  # (K, K)
        out = {
            "dirichlet": -jnp.sum((params["alpha"] - 1.0) * log_p),
            "ce": -jnp.mean(jnp.diagonal(log_p)),
            "centres": -jnp.mean(jnp.diagonal(jax.nn.log_softmax(-dist, axis=-1))),
            "distance": jnp.mean(jnp.diagonal(dist)),
        }
        if "precision" in params:  # models saved before the score existed lack it
            delta = features - params["centres"]
            out["mahalanobis"] = jnp.einsum("kf,kfg,kg->", delta, params["precision"], delta)
        return out

    return parts


def standardise_phase(forward) -> Phase:
    """The gradient-free third phase: one more pass over the training rows for each score's
    mean and std (batches merged as Chan et al.'s parallel variance, stable in float32), so
    that a ``+``-joined score can standardise its parts."""

    def init_state(cfg, train: TrainConfig, n_features: int, key, *, previous):
        del train, n_features, key
        zeros = {name: jnp.zeros(()) for name in SCORES}
        return {"params": previous, "mean": zeros, "m2": zeros, "count": jnp.zeros(())}

    def make_step(cfg, train: TrainConfig, n_features: int):
        parts = jax.vmap(_parts_of(forward, cfg, n_features), in_axes=(None, 0))

        def step(state, batch, mask, key):
            del key
            n_b = jnp.sum(mask)
            n = state["count"] + n_b
            mean, m2 = {}, {}
            for k, v in parts(state["params"], batch).items():
                mean_b = jnp.sum(v * mask) / jnp.maximum(n_b, 1.0)
                delta = mean_b - state["mean"][k]
                mean[k] = state["mean"][k] + delta * n_b / jnp.maximum(n, 1.0)
                m2_b = jnp.sum(jnp.square(v - mean_b) * mask)
                m2[k] = state["m2"][k] + m2_b + jnp.square(delta) * state["count"] * n_b / jnp.maximum(n, 1.0)
            new = {"params": state["params"], "mean": mean, "m2": m2, "count": n}
            return new, {"loss": jnp.zeros(())}

        return step

    def params_of(state) -> dict:
        count = jnp.maximum(state["count"], 1.0)
        std = {k: jnp.sqrt(v / count) + 1e-12 for k, v in state["m2"].items()}
        return state["params"] | {"part_mean": state["mean"], "part_std": std}

    return Phase("standardise", init_state, make_step, params_of=params_of, train_config=statistics_train)


def transformation_scorer(forward):
    """``make_sample_scorer`` of a transformation-prediction method: ``one(params, x) ->
    {'score', 'dirichlet', 'ce', 'centres', 'distance', 'mahalanobis'}`` for one row ``x`` (D,).
    ``mahalanobis`` is the sum over the K copies of each copy's squared Mahalanobis distance
    to its transformation's normal features. ``score`` is the config's choice, or for a
    ``+``-joined one the mean of its parts, each standardised by its training-row mean and
    std (the ``standardise`` phase's)."""

    def make_sample_scorer(cfg, n_features: int):
        parts_of, names = _parts_of(forward, cfg, n_features), score_parts(cfg.score)

        def one(params, x):
            parts = parts_of(params, x)
            missing = [n for n in names if n not in parts]
            if missing:
                raise ValueError(
                    f"score {cfg.score!r} needs {missing}, which this model's parameters lack (it was "
                    "fitted before that score existed): fit it again, or choose another score"
                )
            if len(names) == 1:
                return {"score": parts[names[0]], **parts}
            mean, std = params["part_mean"], params["part_std"]
            return {"score": sum((parts[n] - mean[n]) / std[n] for n in names) / len(names), **parts}

        return one

    return make_sample_scorer


PRESETS = {
    "default": GeomConfig(),
    "tiny": GeomConfig(flips=False, rotations=4, channels=(4, 8), strides=(1, 2), score_batch=64),
}

DETECTOR = register(
    Detector(
        name="geom",
        description="transformation prediction (GEOM): classifies K flips/shifts/rotations, Dirichlet score",
        config_cls=GeomConfig,
        presets=PRESETS,
        phases=(
            training_phase(geom_forward, geom_init),
            calibration_phase(geom_forward, lambda cfg: cfg.channels[-1]),
            standardise_phase(geom_forward),
        ),
        make_sample_scorer=transformation_scorer(geom_forward),
        estimator="TransformationDetector",
    )
)

__all__ = [
    "DETECTOR",
    "SCORES",
    "GeomConfig",
    "dirichlet_mle",
    "inverse_digamma",
    "score_parts",
    "transform_images",
]
