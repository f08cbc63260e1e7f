"""The online scorer: points arrive one at a time (or in small chunks), the last window and
the last ``window`` window scores live in fixed-shape buffers on the device, and each call
returns the scores of the points that just became final. Its scores equal ``score_series``
on the same series (``tests/timeseries/test_streaming.py``)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jax_anomaly.detectors import get_detector
from jax_anomaly.timeseries.detect import SeriesModel
from jax_anomaly.timeseries.windows import as_series


class StreamState(NamedTuple):
    """``points`` (L, C) the last L scaled points (oldest first); ``scores`` (L,) the last L
    window scores (newest last); ``seen`` the number of points fed so far."""

    points: jax.Array
    scores: jax.Array
    seen: jax.Array


class StreamScorer:
    """A jitted online scorer of a fitted deep ``SeriesModel``.

    A point's score (the ``rule`` over every window covering it, as offline) is final once the
    window that starts at it has been scored, i.e. ``window - 1`` points later. ``update``
    returns, for each fed point, the newest window's score and the score of the point that
    became final (index ``seen - window``; ``ready`` False before the first window is full);
    ``flush`` returns the scores of the last ``window - 1`` points at the end of a series.

    Example::

        stream = StreamScorer(model)
        state = stream.init()
        for chunk in chunks:                    # (k, C) or (k,) new points
            state, out = stream.update(state, chunk)
            alarms = out["point_score"][out["ready"]] > model.threshold
        tail = stream.flush(state)              # at the end of the series

    Raises:
      ValueError: a baseline model (NumPy, not jitted) or a detector that draws random
        inputs per sample (VAE, AnoGAN: their scores hash the whole window on the host).
    """

    def __init__(self, model: SeriesModel):
        if not model.is_deep:
            kind = "a whole-series method" if model.method == "discords" else "a NumPy baseline"
            raise ValueError(
                f"streaming needs a windowed deep detector (e.g. SeriesDetector('ae')); "
                f"'{model.method}' is {kind}"
            )
        detector = get_detector(model.method)
        if detector.score_inputs is not None:
            raise ValueError(
                f"streaming needs a deterministic scorer; '{model.method}' draws random inputs per sample"
            )
        self.model = model
        fitted = model.model.fitted
        one = detector.make_sample_scorer(fitted.config, fitted.n_features)
        length, offset, scale = model.window, jnp.asarray(model.offset), jnp.asarray(model.scale)
        reduce = jnp.nanmean if model.rule == "mean" else jnp.nanmax
        to_input = detector.to_input

        def step(params, state: StreamState, point):
            points = jnp.concatenate([state.points[1:], ((point - offset) / scale)[None]])
            seen = state.seen + 1
            window_score = one(params, to_input(points.reshape(-1)))["score"]
            full = seen >= length
            scores = jnp.where(full, jnp.concatenate([state.scores[1:], window_score[None]]), state.scores)
            # The point that starts the newest window is covered by the last min(L, windows) scores.
            n_valid = jnp.minimum(seen - length + 1, length)
            valid = jnp.arange(length) >= length - n_valid
            masked = jnp.where(valid, scores, jnp.nan)  # windows not yet seen
            point_score = jnp.where(full, reduce(masked), jnp.nan)
            out = {
                "window_score": jnp.where(full, window_score, jnp.nan),
                "point_score": point_score,
                "point_index": seen - length,
                "ready": full,
            }
            return StreamState(points, scores, seen), out

        def update(params, state, chunk):
            return jax.lax.scan(lambda s, p: step(params, s, p), state, chunk)

        # Outputs pinned to one device: the state fed back must keep its type, or ``update``
        # compiles again (the scorer's arrays otherwise come back with a mesh sharding).
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        self._update = jax.jit(update, out_shardings=device)
        self._init = jax.jit(
            lambda: StreamState(
                jnp.zeros((length, len(model.offset)), jnp.float32),
                jnp.zeros(length, jnp.float32),
                jnp.int32(0),
            ),
            out_shardings=device,
        )
        self._params = jax.device_put(fitted.params, device)
        self._shape = (length, len(model.offset))

    def init(self) -> StreamState:
        """An empty state (nothing seen)."""
        return self._init()

    def update(self, state: StreamState, points) -> tuple[StreamState, dict[str, jax.Array]]:
        """Feeds ``points`` (k,) or (k, C) in raw units; returns the new state and per point
        ``window_score``, ``point_score``, ``point_index`` and ``ready`` (k,) device arrays."""
        x = as_series(points, "streamed points", min_points=1) if np.ndim(points) else None
        if x is None or x.shape[1] != self._shape[1]:
            raise ValueError(f"points must be (k,) or (k, {self._shape[1]}), got shape {np.shape(points)}")
        return self._update(self._params, state, jnp.asarray(x))

    def flush(self, state: StreamState) -> dict[str, np.ndarray]:
        """The scores of the points fed after the last full window's start (the last
        ``window - 1`` points), from the windows that exist: ``{'point_index', 'point_score'}``."""
        length = self._shape[0]
        seen, scores = int(state.seen), np.asarray(state.scores, np.float64)
        if seen < length:
            raise ValueError(f"only {seen} point(s) fed; the window needs {length}")
        n_windows = seen - length + 1
        index = np.arange(seen - length + 1, seen)
        out = []
        for p in index:  # at most window - 1 points, once per series
            first = max(0, p - length + 1)
            k = min((seen - length) - first + 1, n_windows)
            vals = scores[length - k :]
            out.append(vals.mean() if self.model.rule == "mean" else vals.max())
        return {"point_index": index, "point_score": np.asarray(out)}
