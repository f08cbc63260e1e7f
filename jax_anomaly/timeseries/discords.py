"""Discords at several window lengths: the default series detector. Closed-form (no
training): the series is averaged down to at most ``max_points`` points, and each window's
distance to its nearest other window (the matrix profile, with an exclusion zone) is taken at
several lengths (fractions and multiples of the training series' dominant period), on
z-normalised windows (shape) and on raw ones (level and amplitude). Of these profiles the
one whose highest peak stands out most is kept (its top minus its highest point outside a
wide zone around the top, over its median: the profile that is surest of one event), on the
scale of its median. ``combine='novel'`` keeps instead the profile whose top over the scored
part is highest against its own maximum over the training series (the ratio says how far
the top lies beyond anything normal), on the scale of that maximum: better where a series
holds one anomaly and the training part none, worse where several anomalies share a series
(``docs/results.md``). ``combine='mean'`` averages robust-scaled profiles. The joins run on
the device as blocked matrix products (``profile.join``).

The reference windows are the training series' and the scored series' own: a window is
anomalous when nothing else in either looks like it. A scored series that continues the
training series (the archive's protocol: the whole series, its training part first) is
recognised and not counted twice.

Averaging also hides the texture of a series (noise, tremor, a stretch that is too
smooth), so a third kind of profile, ``n``, joins raw windows of the series' roughness: each
point's jump (its distance from the mean of its two neighbours) at full resolution, averaged
over the same blocks. A roughness profile is kept only where its top stands out clearly
(prominence at least ``rough_prominence``): alone it solves fewer series than the others.
A stretch that is far smoother than any in the normal series (``smoothness`` times, in mean
log roughness: a stretch that was filled in) is raised above the chosen profile.

Averaging hides a one-point anomaly, so one test runs at full resolution: where the scored
part holds a jump (a point's distance from the mean of its two neighbours) ``spike`` times
sharper than any in the training series, such points are raised above the chosen
profile's top."""

from __future__ import annotations

import dataclasses

import numpy as np

from jax_anomaly.timeseries.profile import STD_FLOOR, join, window_rows
from jax_anomaly.timeseries.windows import dominant_period, windows_to_points

KINDS = ("z", "r", "n")  # z-normalised windows, raw windows, raw windows of the roughness
JOINS = ("all", "train")
COMBINES = ("select", "novel", "mean")
POINTS = ("centre", "mean")
# The floor of the roughness (in units of the training series' median) before its log in
# the smoothness test: exactly flat stretches count as this rough.
SMOOTH_FLOOR = 1e-3
# Reference positions of a separate training series: far from every scored window, so the
# exclusion zone never applies between the two.
_APART = -(2**30)


@dataclasses.dataclass(frozen=True)
class DiscordsConfig:
    """Attributes:
    lengths: window lengths as multiples of the dominant period (of the training series,
      after averaging down).
    kinds: ``z`` (z-normalised windows), ``r`` (raw windows) and/or ``n`` (raw windows of
      the roughness: each point's jump at full resolution, averaged over the blocks, over
      its median in the training series per channel).
    join: ``all`` (nearest window anywhere but the query's own neighbourhood) or ``train``
      (nearest training window only).
    combine: ``select`` (keep the profile whose top stands out most within the scored part,
      divided by its median), ``novel`` (keep the profile whose top over the scored part is
      highest against its maximum over the training series, divided by that maximum) or
      ``mean`` (average the profiles, each minus its median over its interquartile range).
    rough_prominence: a roughness (``n``) profile is chosen (``select``, ``novel``) only
      where its prominence is at least this.
    zone: the top's neighbourhood that ``select`` looks past for the second peak, in
      multiples of the larger of the window length and the period.
    max_points: the series is averaged over blocks of ``ceil(points / max_points)``.
    spike: a scored point whose jump (distance from the mean of its two neighbours, per
      channel over the largest in the normal series ``fit`` was given) is at least this is
      raised above the chosen profile; None: no full-resolution test.
    smoothness: where the scored part holds a stretch (of the shortest window's length) this
      many times smoother than any in the normal series ``fit`` was given (mean log
      roughness), its points are raised above the chosen profile, peaked at its centre;
      None: no smoothness test.
    min_length, max_length: bounds of a window length (points after averaging).
    """

    lengths: tuple[float, ...] = (0.5, 1.0)
    kinds: tuple[str, ...] = KINDS
    rough_prominence: float = 2.0
    join: str = "all"
    combine: str = "select"
    zone: float = 4.0
    points: str = "mean"
    members: tuple[str, ...] = ("ae",)
    max_points: int = 20_000
    spike: float | None = 2.0
    smoothness: float | None = 4.0
    min_length: int = 4
    max_length: int = 512

    def __post_init__(self):
        if not self.lengths or any(r <= 0 for r in self.lengths):
            raise ValueError(f"lengths must be positive multiples of the period, got {self.lengths}")
        if not self.kinds or set(self.kinds) - set(KINDS):
            raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {self.kinds}")
        if self.join not in JOINS:
            raise ValueError(f"join must be one of {JOINS}, got '{self.join}'")
        if self.combine not in COMBINES:
            raise ValueError(f"combine must be one of {COMBINES}, got '{self.combine}'")
        if self.points not in POINTS:
            raise ValueError(f"points must be one of {POINTS}, got '{self.points}'")
        if "discords" in self.members:
            raise ValueError("members must be windowed detectors (e.g. 'ae'), not 'discords'")
        if self.rough_prominence < 0:
            raise ValueError(f"rough_prominence must be >= 0, got {self.rough_prominence}")
        if self.zone <= 0:
            raise ValueError(f"zone must be positive, got {self.zone}")
        if self.spike is not None and self.spike <= 1:
            raise ValueError(
                f"spike must be > 1 (a multiple of the training series' sharpest jump), got {self.spike}"
            )
        if self.smoothness is not None and self.smoothness <= 1:
            raise ValueError(
                f"smoothness must be > 1 (times smoother than the training series), got {self.smoothness}"
            )
        if self.max_points < 100:
            raise ValueError(f"max_points must be >= 100, got {self.max_points}")
        if not 2 <= self.min_length <= self.max_length:
            raise ValueError(f"need 2 <= min_length <= max_length, got {self.min_length}, {self.max_length}")


def downsample(x: np.ndarray, factor: int) -> np.ndarray:
    """Means over consecutive blocks of ``factor`` points (a last partial block included)."""
    if factor == 1:
        return np.asarray(x, np.float64)
    n = len(x)
    pad = -n % factor
    xp = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)]) if pad else x
    return xp.reshape(-1, factor, x.shape[1]).mean(1)


class Discords:
    """The multi-length discord detector (``DiscordsConfig`` fields as keywords)."""

    def __init__(self, seed: int = 0, **config):
        del seed  # deterministic
        self.config = DiscordsConfig(**config)

    def fit(
        self, series: np.ndarray, period: int | None = None, normal: np.ndarray | None = None
    ) -> Discords:
        """Keeps the (scaled) training series ``(T, C)``; ``period``: the points the window
        lengths are multiples of (None: the series' dominant period after averaging);
        ``normal``: the whole normal series the jump and smoothness tests measure against,
        where ``series`` is only part of it (``fit_series`` holds a stretch out for the
        threshold)."""
        self.train_ = np.asarray(series, np.float64)
        self.normal_ = self.train_ if normal is None else np.asarray(normal, np.float64)
        self.jump_scale_ = jump_scale(self.normal_)
        self.period_ = period
        self.members_ = []  # fitted members' SeriesModels (``fit_series`` sets them)
        return self

    def _period(self, train: np.ndarray, factor: int) -> int:
        """The period (points) of the training series ``train`` averaged by ``factor``."""
        if self.period_ is not None:
            return max(1, round(self.period_ / factor))
        return dominant_period(train)

    def _lengths(self, period: int, n_train: int) -> list[int]:
        """The window lengths for ``period`` and ``n_train`` training points (both after
        averaging)."""
        cfg = self.config
        top = max(cfg.min_length, min(cfg.max_length, n_train // 2))
        return sorted({int(np.clip(round(r * period), cfg.min_length, top)) for r in cfg.lengths})

    def score(self, series: np.ndarray) -> np.ndarray:
        """Point scores ``(T,)`` of a (scaled) series ``(T, C)``; higher = more anomalous.

        Raises:
          ValueError: a series shorter than the shortest window.
        """
        return self.details(series)["score"]

    def details(
        self,
        series: np.ndarray,
        extra: dict[str, np.ndarray] | None = None,
        extra_reference: dict[str, np.ndarray] | None = None,
    ) -> dict:
        """``score`` (T,) as ``score``, with ``factor`` (the averaging), ``profiles``: a list of
        ``(length in points of the series, kind, novelty, prominence)``, ``chosen`` (its index
        in that list; None for ``combine='mean'``), ``spike`` (the scored part's sharpest
        jump over the training series'; the score was raised there when it is >=
        ``config.spike``) and ``smoothness`` (how many times smoother the scored part's smoothest
        stretch is than the training series'; raised there when >= ``config.smoothness``).

        ``extra``: more point scores ``(T,)`` of the series by name (another detector's), each
        one more candidate profile (kind = its name, length 0). Its novelty is judged against
        ``extra_reference[name]`` (the detector's scores of normal points) where given, else
        against its scores over the training part of a series that continues the training
        series; with neither it takes part in ``select`` and ``mean`` only."""
        cfg = self.config
        x = np.asarray(series, np.float64)
        n_train = len(self.train_)
        continues = len(x) >= n_train and np.array_equal(x[:n_train], self.train_)
        total = len(x) if continues else n_train + len(x)
        f = max(1, -(-total // cfg.max_points))
        xd, td = downsample(x, f), downsample(self.train_, f)
        period = self._period(td, f)
        all_lengths = self._lengths(period, len(td))
        lengths = [m for m in all_lengths if m <= len(xd)]
        if not lengths:
            raise ValueError(
                f"series of {len(x)} points is shorter than the shortest window ({all_lengths[0] * f})"
            )
        floor = STD_FLOOR * float(td.std())
        # Statistics (medians, peaks) of the part after the training part, where there is one.
        scored_from = len(td) if continues and len(xd) > len(td) else 0
        series = {"z": (xd, td), "r": (xd, td)}
        if "n" in cfg.kinds:
            series["n"] = roughness(x, self.train_, f)
        profiles, references, zones = [], [], []
        for m in lengths:
            for kind in cfg.kinds:
                profile, reference = self._profile(*series[kind], continues, m, kind == "z", floor)
                profiles.append(profile)
                references.append(reference)
                zones.append(int(cfg.zone * max(m, period)))
        pairs = [(m, kind) for m in lengths for kind in cfg.kinds]
        full = [None] * len(profiles)  # a candidate's full-resolution scores, where it has them
        for name, points in (extra or {}).items():
            points = np.asarray(points, np.float64)
            if points.shape != (len(x),):
                raise ValueError(f"extra scores '{name}' have shape {points.shape}; expected ({len(x)},)")
            profiles.append(downsample(points[:, None], f)[:, 0])
            if name in (extra_reference or {}):
                references.append(np.asarray(extra_reference[name], np.float64))
            else:
                references.append(profiles[-1][:scored_from] if scored_from else None)
            zones.append(int(cfg.zone * period))
            pairs.append((0, name))
            full.append(points)
        scored = [p[scored_from:] for p in profiles]
        stand_out = [prominence(p, z) for p, z in zip(scored, zones, strict=True)]
        novel = [novelty(p, r) for p, r in zip(scored, references, strict=True)]
        best = None
        if cfg.combine in ("novel", "select"):
            by_novelty = cfg.combine == "novel" and max(novel) > 0  # else by prominence
            # Roughness profiles below their prominence bar are not candidates.
            trusted = [
                kind != "n" or prom >= cfg.rough_prominence
                for (_, kind), prom in zip(pairs, stand_out, strict=True)
            ]
            trusted = trusted if any(trusted) else [True] * len(trusted)
            best = int(np.argmax(np.where(trusted, novel if by_novelty else stand_out, -np.inf)))
            unit = float(np.max(references[best]) if by_novelty else np.median(scored[best]))
            out = full[best] if full[best] is not None else np.repeat(profiles[best], f)[: len(x)]
            out = out / max(unit, 1e-12)
        else:
            out = np.mean([_robust(p, q) for p, q in zip(profiles, scored, strict=True)], axis=0)
            out = np.repeat(out, f)[: len(x)]
        # Against the whole normal series (a scored series that continues it: its first part).
        normal = self.normal_
        after = len(x) >= len(normal) and np.array_equal(x[: len(normal)], normal)
        smoothness, start = smoothest_stretch(
            *roughness(x, normal, f), lengths[0], -(-len(normal) // f) if after else None
        )
        if cfg.smoothness is not None and smoothness >= cfg.smoothness:
            # A tent over the stretch's points, peaked at its centre, above the profile's top.
            lo, hi = start * f, min(len(x), (start + lengths[0]) * f)
            tent = np.zeros(len(x))
            tent[lo:hi] = 1.0 - np.abs(np.arange(lo, hi) - (lo + hi - 1) / 2) / ((hi - lo) / 2 + 1)
            out = _raise_above(out, tent)
        ratio = jump_ratio(x, self.jump_scale_)
        spike = float(ratio[scored_from * f :].max()) if len(x) > scored_from * f else 0.0
        if cfg.spike is not None and spike >= cfg.spike:
            raised = np.where(ratio >= cfg.spike, ratio, 0.0)
            raised[: scored_from * f] = 0.0
            out = _raise_above(out, raised / spike)  # 1 at the sharpest jump
        names = [
            (m * f, kind, float(v), float(r)) for (m, kind), v, r in zip(pairs, novel, stand_out, strict=True)
        ]
        return {
            "score": out,
            "factor": f,
            "profiles": names,
            "chosen": best,
            "spike": spike,
            "smoothness": smoothness,
        }

    def _profile(self, xd, td, continues, m, normalise, floor) -> tuple[np.ndarray, np.ndarray | None]:
        """One profile on the averaged series' points, divided by the root of the window
        length, and the same over the training series' points (None where the training
        series is shorter than the window, or is a separate series and ``combine`` is not
        ``novel``: only that rule reads it); window distances map to points by
        ``config.points`` (with ``centre``, the points no window centres on take the
        profile's median)."""
        cfg = self.config
        w = window_rows(xd, m, normalise, floor)
        pos = np.arange(len(w))
        if continues:
            queries, q_pos = w, pos
            refs, ref_pos, ref_train = w, pos, pos + m <= len(td)
        else:
            wt = (
                window_rows(td, m, normalise, floor)
                if len(td) >= m
                else np.zeros((0, w.shape[1]), np.float32)
            )
            refs = np.concatenate([wt, w])
            ref_pos = np.concatenate([_APART + np.arange(len(wt)), pos])
            ref_train = np.concatenate([np.ones(len(wt), bool), np.zeros(len(w), bool)])
            # ``novel`` queries the training windows too: their profile is its reference.
            queries, q_pos = (refs, ref_pos) if cfg.combine == "novel" else (w, pos)
        d_all, d_train = join(
            queries, q_pos, refs, ref_pos, ref_train, max(1, m // 2), with_train=cfg.join == "train"
        )
        d = (d_all if cfg.join == "all" else d_train) / np.sqrt(m)
        d = np.where(np.isfinite(d), d, np.nan)
        fill = float(np.nanmedian(d)) if np.isfinite(d).any() else 0.0
        d = np.where(np.isnan(d), fill, d)
        if continues:
            points = self._to_points(d, len(xd), m, fill)
            return points, points[: len(td)] if len(td) >= m else None
        n_t = len(queries) - len(w)
        reference = self._to_points(d[:n_t], len(td), m, fill) if n_t else None
        return self._to_points(d[n_t:], len(xd), m, fill), reference

    def _to_points(self, d: np.ndarray, n: int, m: int, fill: float) -> np.ndarray:
        if self.config.points == "mean":
            return windows_to_points(d, n, m, 1, "mean")
        out = np.full(n, fill)
        out[m // 2 : m // 2 + len(d)] = d
        return out


def _raise_above(scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``scores`` with the points of positive ``weights`` (in (0, 1]) raised above their
    maximum: to it plus ``weights`` times their span (the full-resolution tests' raise)."""
    span = max(float(scores.max() - scores.min()), 1e-12)
    return np.where(weights > 0, scores.max() + weights * span, scores)


def roughness(x: np.ndarray, train: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """The roughness of a series ``x`` and of the training series ``train`` (both ``(T, C)``,
    full resolution): each point's jump, averaged over blocks of ``factor`` points, over the
    training series' median of the same per channel."""
    rx, rt = downsample(_jumps(x), factor), downsample(_jumps(train), factor)
    unit = np.maximum(np.median(rt, axis=0), 1e-12) if len(rt) else 1.0
    return rx / unit, rt / unit


def smoothest_stretch(
    rough: np.ndarray, rough_train: np.ndarray, length: int, continues_from: int | None
) -> tuple[float, int]:
    """How much smoother the scored part's smoothest stretch of ``length`` points is than any
    stretch of the training series, and where it starts: the mean log roughness
    (``roughness``, floored at ``SMOOTH_FLOOR``) over each stretch; the ratio is
    exp(training minimum - scored minimum) in the channel where it is largest.

    ``rough`` covers the scored series, ``rough_train`` the training series; with
    ``continues_from`` (the scored series continues the training series, whose points it
    holds up to there) the training stretches are those inside the first ``continues_from``
    points of ``rough`` and the scored ones those that reach beyond. (1.0, 0) where either
    part has no whole stretch."""
    kernel = np.ones(length) / length

    def means(r):
        lr = np.log(np.maximum(r, 0.0) + SMOOTH_FLOOR)
        if len(lr) < length:
            return np.zeros((0, lr.shape[1]))
        return np.stack([np.convolve(lr[:, c], kernel, mode="valid") for c in range(lr.shape[1])], 1)

    if continues_from is None:
        train, scored, offset = means(rough_train), means(rough), 0
    else:
        both = means(rough)
        cut = max(0, continues_from - length + 1)
        train, scored, offset = both[:cut], both[cut:], cut
    if not len(train) or not len(scored):
        return 1.0, 0
    gap = train.min(0) - scored.min(0)  # per channel, log units
    c = int(np.argmax(gap))
    return float(np.exp(gap[c])), offset + int(np.argmin(scored[:, c]))


def novelty(scored: np.ndarray, reference: np.ndarray | None) -> float:
    """How far a profile's top over the scored part lies beyond its maximum over normal
    points: ``max(scored) / max(reference)`` (0 without a reference)."""
    if reference is None or not len(reference):
        return 0.0
    return float(np.max(scored)) / max(float(np.max(reference)), 1e-12)


def _jumps(a: np.ndarray) -> np.ndarray:
    """Each point's jump, ``|a[t] - (a[t-1] + a[t+1]) / 2|`` (0 at the ends), per channel."""
    a = np.asarray(a, np.float64)
    j = np.zeros_like(a)
    j[1:-1] = np.abs(a[1:-1] - (a[:-2] + a[2:]) / 2)
    return j


def jump_scale(normal: np.ndarray) -> np.ndarray:
    """The largest jump of a normal series ``(T, C)``, per channel (floored at a millionth of
    the channel's range): what ``jump_ratio`` divides by."""
    spread = np.ptp(np.asarray(normal, np.float64), axis=0)
    return np.maximum(_jumps(normal).max(0), np.maximum(1e-6 * spread, 1e-12))


def jump_ratio(x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Each point's jump over ``scale`` (``jump_scale`` of a normal series), the largest over
    channels: (T,)."""
    return (_jumps(x) / scale).max(1)


def prominence(profile: np.ndarray, zone: int) -> float:
    """How far a profile's top stands out: its top minus its highest value more than
    ``zone`` points away, over its median."""
    i = int(np.argmax(profile))
    rest = profile.copy()
    rest[max(0, i - zone) : i + zone] = -np.inf
    second = float(rest.max()) if np.isfinite(rest).any() else float(np.median(profile))
    return (float(profile[i]) - second) / max(float(np.median(profile)), 1e-12)


def _robust(profile: np.ndarray, part: np.ndarray) -> np.ndarray:
    q25, q50, q75 = np.percentile(part, (25, 50, 75))
    return (profile - q50) / max(q75 - q25, 1e-12)
