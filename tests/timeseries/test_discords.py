"""The matrix-profile join and the multi-length discord detector (the series default)."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import jax_anomaly as ja
from jax_anomaly.data.series import make_series
from jax_anomaly.timeseries import fit_series, score_series
from jax_anomaly.timeseries.discords import (
    Discords,
    DiscordsConfig,
    downsample,
    roughness,
    smoothest_stretch,
)
from jax_anomaly.timeseries.profile import join, window_rows


def _brute(q, q_pos, r, r_pos, r_train, excl):
    d = np.sqrt(((q[:, None, :] - r[None, :, :]) ** 2).sum(-1))
    d[np.abs(q_pos[:, None] - r_pos[None, :]) < excl] = np.inf
    return d.min(1), np.where(r_train[None, :], d, np.inf).min(1)


def test_join_equals_brute_force_with_exclusion_zone_and_training_mask():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((700, 2)).astype(np.float32)
    w = window_rows(x, 9, normalise=True)
    pos = np.arange(len(w))
    train = pos < 300
    # 692 queries: three blocks, the last padded; 692 references padded to the reference multiple.
    got = join(w, pos, w, pos, train, exclusion=4)
    want = _brute(w, pos, w, pos, train, 4)
    for g, e in zip(got, want, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)
    # z-normalised per channel: each channel of a window has mean 0 and std 1.
    ch = w.reshape(len(w), 9, 2)
    np.testing.assert_allclose(ch.mean(1), 0, atol=1e-5)
    np.testing.assert_allclose(ch.std(1), 1, atol=1e-4)


def test_join_without_any_reference_left_is_inf():
    w = np.ones((3, 4), np.float32)
    a, t = join(w, np.arange(3), w, np.arange(3), np.zeros(3, bool), exclusion=10)
    assert np.isinf(a).all() and np.isinf(t).all()


def test_downsample_keeps_a_partial_last_block():
    x = np.arange(7, dtype=np.float64)[:, None]
    np.testing.assert_allclose(downsample(x, 3)[:, 0], [1, 4, 6])


@pytest.fixture(scope="module")
def collective():
    return make_series(kind="collective", n_train=600, n_test=1500, period=20, n_anomalies=4, seed=1)


def test_discords_find_collective_anomalies_and_are_the_default(collective):
    det = ja.SeriesDetector().fit(collective.train)
    assert det.method == "discords" and det.model_.method == "discords"
    # The dense AE is fitted beside as one more candidate (the default members).
    assert [m.method for m in det.model_.model.members_] == ["ae"]
    scores = det.decision_function(collective.test)
    assert scores.shape == (1500,) and np.isfinite(scores).all()
    assert roc_auc_score(collective.test_labels, scores) > 0.9
    # The single highest point lies in an anomaly (the archive's accuracy).
    assert collective.test_labels[int(np.argmax(scores))] == 1
    assert np.isfinite(det.threshold_)


def test_a_series_that_continues_the_training_series_is_not_counted_twice(collective):
    train, test = collective.train[:, 0], collective.test[:, 0]
    det = Discords().fit(train[:, None])
    whole = det.score(np.concatenate([train, test])[:, None])
    assert whole.shape == (len(train) + len(test),)
    # The continued series' own training part finds its neighbours in itself, not a copy at
    # distance 0: its scores are not flat zeros.
    assert np.std(whole[: len(train)]) > 0
    assert collective.test_labels[int(np.argmax(whole[len(train) :]))] == 1


def test_discords_on_a_long_series_average_down_and_keep_the_spike():
    rng = np.random.default_rng(3)
    t = np.arange(60_000)
    x = np.sin(2 * np.pi * t / 50) + 0.05 * rng.standard_normal(len(t))
    x[40_000:40_030] += 1.5  # a bump over half a period
    det = Discords(max_points=10_000).fit(x[:20_000, None])
    scores = det.score(x[:, None])
    assert scores.shape == (60_000,)
    top = int(np.argmax(scores[20_000:])) + 20_000
    assert 40_000 - 100 <= top < 40_030 + 100


def test_discords_on_several_channels():
    s = make_series(kind="collective", n_train=600, n_test=1500, period=20, n_anomalies=4, seed=2)
    rng = np.random.default_rng(0)

    def two(x):  # a second, clean channel at another period and scale
        t = np.arange(len(x))
        return np.column_stack([x[:, 0], 5 * np.cos(2 * np.pi * t / 13) + 0.1 * rng.standard_normal(len(x))])

    model = fit_series("discords", two(s.train))
    scores = score_series(model, two(s.test))["score"]
    assert roc_auc_score(s.test_labels, scores) > 0.85


def test_discords_config_errors_are_clear():
    with pytest.raises(ValueError, match="kinds"):
        DiscordsConfig(kinds=("x",))
    with pytest.raises(ValueError, match="join"):
        DiscordsConfig(join="left")
    with pytest.raises(ValueError, match="lengths"):
        DiscordsConfig(lengths=())
    with pytest.raises(ValueError, match="members must be windowed detectors"):
        DiscordsConfig(members=("discords",))
    with pytest.raises(ValueError, match="points"):
        DiscordsConfig(points="last")
    with pytest.raises(ValueError, match="rough_prominence"):
        DiscordsConfig(rough_prominence=-1)
    with pytest.raises(ValueError, match="smoothness must be > 1"):
        DiscordsConfig(smoothness=0.5)
    with pytest.raises(ValueError, match="spike must be > 1"):
        DiscordsConfig(spike=0.5)
    wave = np.sin(np.arange(400) / 3)[:, None]
    with pytest.raises(ValueError, match="expected \\(400,\\)"):
        Discords().fit(wave).details(wave, {"ae": np.zeros(4)})
    with pytest.raises(ValueError, match="shorter than the shortest window"):
        Discords().fit(np.sin(np.arange(400) / 3)[:, None]).score(np.zeros((3, 1)))


def test_discords_without_members_and_streaming_refused(collective):
    model = fit_series("discords", collective.train, model={"members": ()})
    assert model.model.members_ == []
    assert roc_auc_score(collective.test_labels, score_series(model, collective.test)["score"]) > 0.7
    from jax_anomaly.timeseries.streaming import StreamScorer

    with pytest.raises(ValueError, match="whole-series method"):
        StreamScorer(model)


def test_a_one_point_jump_hidden_by_averaging_is_found_at_full_resolution():
    rng = np.random.default_rng(4)
    # A smooth wave whose period slows for 500 points (a wide, smooth discord), and one point
    # jumps by half the amplitude: after averaging by 6 the slow stretch stands out more.
    step = np.full(60_000, 2 * np.pi / 50)
    step[30_000:30_500] = 2 * np.pi / 40
    x = np.sin(np.cumsum(step)) + 0.01 * rng.standard_normal(60_000)
    x[41_234] += 0.5

    def fitted(**kw):
        return Discords(max_points=10_000, members=(), **kw).fit(x[:20_000, None])

    plain = fitted(spike=None).score(x[:, None])
    assert 30_000 - 100 <= int(np.argmax(plain[20_000:])) + 20_000 < 30_500 + 100
    shape_and_level = fitted(kinds=("z", "r")).score(x[:, None])
    assert not 44_000 - 100 <= int(np.argmax(shape_and_level[20_000:])) + 20_000 < 44_150 + 100
    out = fitted().details(x[:, None])
    assert out["factor"] == 6 and out["spike"] > 2
    assert int(np.argmax(out["score"][20_000:])) + 20_000 == 41_234
    # Without such a jump the chosen profile is the score, unchanged.
    y = x.copy()
    y[41_234] -= 0.5
    got = fitted().details(y[:, None])
    assert got["spike"] < 2
    np.testing.assert_allclose(got["score"], fitted(spike=None).score(y[:, None]))


def test_novel_keeps_the_profile_most_beyond_its_training_maximum_in_its_units(collective):
    det = Discords(members=(), spike=None, combine="novel", kinds=("z", "r")).fit(collective.train)
    out = det.details(collective.test)  # a separate series: the training windows are profiled too
    novelty = [p[2] for p in out["profiles"]]
    assert len(novelty) == 4 and min(novelty) > 0  # two lengths, z and raw
    assert out["chosen"] == int(np.argmax(novelty))
    # The score is the chosen profile over its training maximum: its top is the novelty.
    np.testing.assert_allclose(out["score"].max(), novelty[out["chosen"]], rtol=1e-6)
    assert novelty[out["chosen"]] > 1.2
    assert roc_auc_score(collective.test_labels, out["score"]) > 0.9
    # ``select`` (the default) judges the same profiles by their prominence in the scored part.
    picked = Discords(members=(), kinds=("z", "r")).fit(collective.train).details(collective.test)
    assert picked["chosen"] == int(np.argmax([p[3] for p in picked["profiles"]]))
    # An extra candidate without a reference (no continued training part) is not eligible.
    extra = {"flat": np.linspace(0, 100, len(collective.test))}
    with_extra = det.details(collective.test, extra)
    assert with_extra["profiles"][-1][2] == 0 and with_extra["chosen"] == out["chosen"]
    ref = det.details(collective.test, extra, {"flat": np.ones(10)})
    assert ref["chosen"] == 4  # its top, 100, is 100 times its reference's


def test_roughness_is_each_points_jump_averaged_over_blocks_per_channel():
    rng = np.random.default_rng(5)
    train, x = rng.standard_normal((40, 2)), rng.standard_normal((30, 2))
    x[:, 1] *= 10
    train[:, 1] *= 10

    def jumps(a):
        j = np.zeros_like(a)
        j[1:-1] = np.abs(a[1:-1] - (a[:-2] + a[2:]) / 2)
        return j

    rx, rt = roughness(x, train, 3)
    unit = np.median(downsample(jumps(train), 3), axis=0)
    np.testing.assert_allclose(rx, downsample(jumps(x), 3) / unit)
    np.testing.assert_allclose(np.median(rt, axis=0), 1.0)  # per channel: scales do not matter


def test_a_noisy_stretch_hidden_by_averaging_is_found_by_the_roughness_profile():
    rng = np.random.default_rng(6)
    t = np.arange(60_000)
    x = np.sin(2 * np.pi * t / 200) + 0.002 * rng.standard_normal(len(t))
    x[44_000:44_150] += 0.08 * (-1.0) ** np.arange(150)  # a tremor that averaging by 6 cancels

    def fitted(**kw):
        return Discords(max_points=10_000, members=(), spike=None, **kw).fit(x[:20_000, None])

    shape_and_level = fitted(kinds=("z", "r")).score(x[:, None])
    assert not 44_000 - 100 <= int(np.argmax(shape_and_level[20_000:])) + 20_000 < 44_150 + 100
    out = fitted().details(x[:, None])
    assert out["factor"] == 6
    kind = out["profiles"][out["chosen"]][1]
    assert kind == "n" and out["profiles"][out["chosen"]][3] >= 2.0
    top = int(np.argmax(out["score"][20_000:])) + 20_000
    assert 44_000 - 100 <= top < 44_150 + 100
    # Below its prominence bar a roughness profile is never chosen.
    strict = fitted(rough_prominence=1e9).details(x[:, None])
    assert strict["profiles"][strict["chosen"]][1] != "n"


def test_smoothest_stretch_against_a_direct_reference():
    rng = np.random.default_rng(7)
    train, scored = rng.uniform(0.5, 2.0, (50, 2)), rng.uniform(0.5, 2.0, (40, 2))
    scored[20:25, 1] = 0.01  # much smoother than anything in the training roughness
    ratio, start = smoothest_stretch(scored, train, 5, None)

    def stretch_means(r):
        return np.array([np.log(r[i : i + 5] + 1e-3).mean(0) for i in range(len(r) - 4)])

    gap = stretch_means(train).min(0) - stretch_means(scored).min(0)
    np.testing.assert_allclose(ratio, np.exp(gap.max()), rtol=1e-10)
    assert start == 20 and ratio > 20
    # A continued series: its first 50 points are the training part.
    both = np.concatenate([train, scored])
    assert smoothest_stretch(both, train, 5, 50) == pytest.approx((ratio, 70))


def test_a_stretch_smoother_than_any_in_training_is_raised_to_the_top():
    rng = np.random.default_rng(8)
    t = np.arange(60_000)
    x = np.sin(2 * np.pi * t / 300) + 0.02 * rng.standard_normal(len(t))
    # An interpolated stretch (a sensor that froze and was filled in): its shape and level
    # match the wave, averaging by 6 leaves the same values, only its texture is missing.
    x[47_000:47_120] = np.sin(2 * np.pi * t[47_000:47_120] / 300)

    def fitted(**kw):
        return Discords(max_points=10_000, members=(), spike=None, **kw).fit(x[:20_000, None])

    out = fitted().details(x[:, None])
    assert out["smoothness"] > 4
    top = int(np.argmax(out["score"][20_000:])) + 20_000
    assert 47_000 <= top < 47_120
    off = fitted(smoothness=None).details(x[:, None])
    assert off["smoothness"] == pytest.approx(out["smoothness"])  # measured either way, raised only with it
    assert not 47_000 - 100 <= int(np.argmax(off["score"][20_000:])) + 20_000 < 47_120 + 100
    # Measured against the whole normal series: a filled-in stretch in its held-out part
    # (fit_series fits on the first part only) makes the scored one nothing new.
    y = x.copy()
    y[17_000:17_120] = np.sin(2 * np.pi * t[17_000:17_120] / 300)
    held = Discords(max_points=10_000, members=(), spike=None).fit(y[:16_000, None], normal=y[:20_000, None])
    assert held.details(y[:, None])["smoothness"] < 2
    assert fitted().fit(y[:16_000, None]).details(y[:, None])["smoothness"] > 4  # the fitting part alone
