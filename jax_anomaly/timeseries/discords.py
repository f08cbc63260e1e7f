"""Discords at several window lengths: the default series detector. Closed-form (no
training): the series is averaged down to at most ``max_points`` points, and each window's
distance to its nearest other window (the matrix profile, with an exclusion zone) is taken at
several lengths (fractions and multiples of the training series' dominant period), on
z-normalised windows (shape) and on raw ones (level and amplitude). Of these profiles the
one whose highest peak stands out most is kept (its top minus its highest point outside a
wide zone around the top, over its median: the profile that is surest of one event), on the
scale of its median; ``combine='mean'`` averages robust-scaled profiles instead. The joins
run on the device as blocked matrix products (``profile.join``).

The reference windows are the training series' and the scored series' own: a window is
anomalous when nothing else in either looks like it. A scored series that continues the
training series (the archive's protocol: the whole series, its training part first) is
recognised and not counted twice."""

from __future__ import annotations

import dataclasses

import numpy as np

from jax_anomaly.timeseries.profile import STD_FLOOR, join, window_rows
from jax_anomaly.timeseries.windows import dominant_period, windows_to_points

KINDS = ("z", "r")  # z-normalised windows, raw windows
JOINS = ("all", "train")
COMBINES = ("select", "mean")
POINTS = ("centre", "mean")
# Reference positions of a separate training series: far from every scored window, so the
# exclusion zone never applies between the two.
_APART = -(2**30)


@dataclasses.dataclass(frozen=True)
class DiscordsConfig:
    """Attributes:
    lengths: window lengths as multiples of the dominant period (of the training series,
      after averaging down).
    kinds: ``z`` (z-normalised windows) and/or ``r`` (raw windows).
    join: ``all`` (nearest window anywhere but the query's own neighbourhood) or ``train``
      (nearest training window only).
    combine: ``select`` (keep the profile whose top stands out most, divided by its
      median) or ``mean`` (average the profiles, each minus its median over its
      interquartile range).
    zone: the top's neighbourhood that ``select`` looks past for the second peak, in
      multiples of the larger of the window length and the period.
    max_points: the series is averaged over blocks of ``ceil(points / max_points)``.
    min_length, max_length: bounds of a window length (points after averaging).
    """

    lengths: tuple[float, ...] = (0.5, 1.0)
    kinds: tuple[str, ...] = KINDS
    join: str = "all"
    combine: str = "select"
    zone: float = 4.0
    points: str = "mean"
    members: tuple[str, ...] = ("ae",)
    max_points: int = 20_000
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
        if self.zone <= 0:
            raise ValueError(f"zone must be positive, got {self.zone}")
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

    def fit(self, series: np.ndarray, period: int | None = None) -> Discords:
        """Keeps the (scaled) training series ``(T, C)``; ``period``: the points the window
        lengths are multiples of (None: the series' dominant period after averaging)."""
        self.train_ = np.asarray(series, np.float64)
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

    def details(self, series: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> dict:
        """``score`` (T,) as ``score``, with ``factor`` (the averaging), ``profiles``: a list of
        ``(length in points of the series, kind, prominence)`` and ``chosen`` (its index in
        that list; None for ``combine='mean'``).

        ``extra``: more point scores ``(T,)`` of the series by name (another detector's), each
        one more candidate profile (kind = its name, length 0)."""
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
        profiles, zones = [], []
        for m in lengths:
            for kind in cfg.kinds:
                profiles.append(self._profile(xd, td, continues, m, kind == "z", floor))
                zones.append(int(cfg.zone * max(m, period)))
        pairs = [(m, kind) for m in lengths for kind in cfg.kinds]
        full = [None] * len(profiles)  # a candidate's full-resolution scores, where it has them
        for name, points in (extra or {}).items():
            points = np.asarray(points, np.float64)
            if points.shape != (len(x),):
                raise ValueError(f"extra scores '{name}' have shape {points.shape}; expected ({len(x)},)")
            profiles.append(downsample(points[:, None], f)[:, 0])
            zones.append(int(cfg.zone * period))
            pairs.append((0, name))
            full.append(points)
        scored = [p[scored_from:] for p in profiles]
        stand_out = [prominence(p, z) for p, z in zip(scored, zones, strict=True)]
        best = None
        if cfg.combine == "select":
            best = int(np.argmax(stand_out))
            median = max(float(np.median(scored[best])), 1e-12)
            out = full[best] if full[best] is not None else np.repeat(profiles[best], f)[: len(x)]
            out = out / median
        else:
            out = np.mean([_robust(p, q) for p, q in zip(profiles, scored, strict=True)], axis=0)
            out = np.repeat(out, f)[: len(x)]
        names = [(m * f, kind, float(r)) for (m, kind), r in zip(pairs, stand_out, strict=True)]
        return {"score": out, "factor": f, "profiles": names, "chosen": best}

    def _profile(self, xd, td, continues, m, normalise, floor) -> np.ndarray:
        """One profile on the averaged series' points, divided by the root of the window
        length; window distances map to points by ``config.points`` (with ``centre``, the
        points no window centres on take the profile's median)."""
        cfg = self.config
        w = window_rows(xd, m, normalise, floor)
        pos = np.arange(len(w))
        if continues:
            refs, ref_pos, ref_train = w, pos, pos + m <= len(td)
        else:
            wt = (
                window_rows(td, m, normalise, floor)
                if len(td) >= m
                else np.zeros((0, w.shape[1]), np.float32)
            )
            refs = np.concatenate([wt, w])
            ref_pos = np.concatenate([np.full(len(wt), _APART), pos])
            ref_train = np.concatenate([np.ones(len(wt), bool), np.zeros(len(w), bool)])
        d_all, d_train = join(
            w, pos, refs, ref_pos, ref_train, max(1, m // 2), with_train=cfg.join == "train"
        )
        d = (d_all if cfg.join == "all" else d_train) / np.sqrt(m)
        d = np.where(np.isfinite(d), d, np.nan)
        fill = float(np.nanmedian(d)) if np.isfinite(d).any() else 0.0
        d = np.where(np.isnan(d), fill, d)
        if cfg.points == "mean":
            return windows_to_points(d, len(xd), m, 1, "mean")
        out = np.full(len(xd), fill)
        out[m // 2 : m // 2 + len(d)] = d
        return out


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
