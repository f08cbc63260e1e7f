"""The synthetic-defect segmenter: its defects, its loss, its network, its maps."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors import defects
from jax_anomaly.models import SegmentationNet
from jax_anomaly.models.conv import _depth_to_space, _space_to_depth


@pytest.fixture(scope="module")
def fitted_tiles(defect_tiles):
    return defects.DETECTOR.fit(
        defects.PRESETS["tiny"],
        TrainConfig(epochs=20, batch_size=32),
        defect_tiles.x_train,
        key=jax.random.key(0),
        progress=False,
    )


@pytest.mark.parametrize("channels", [1, 3])  # grey, RGB
def test_synthetic_defects_change_only_their_mask(channels):
    cfg = defects.DefectsConfig(defect_share=1.0)
    rng = np.random.default_rng(0)
    image = jnp.asarray(rng.uniform(0.3, 0.7, (32, 32, channels)), jnp.float32)
    other = jnp.asarray(rng.uniform(0.3, 0.7, (32, 32, channels)), jnp.float32)
    shares, lines, blobs = [], [], []
    for i in range(40):
        for line_share, kept in ((1.0, lines), (0.0, blobs)):
            out, mask = defects.synthetic_defects(
                jax.random.key(i),
                image,
                other,
                defects.DefectsConfig(defect_share=1.0, line_share=line_share),
            )
            out, mask = np.asarray(out), np.asarray(mask)
            assert out.shape == image.shape and mask.shape == (32, 32)
            assert set(np.unique(mask)) <= {0.0, 1.0}
            np.testing.assert_array_equal(out[mask == 0], np.asarray(image)[mask == 0])
            assert out.min() >= 0.0 and out.max() <= 1.0
            kept.append(mask.mean())
        shares.append(mask.any())
    assert np.mean(shares) > 0.5 and 0.0 < np.mean(lines) < np.mean(blobs)
    none = [
        np.asarray(
            defects.synthetic_defects(
                jax.random.key(i), image, other, defects.DefectsConfig(defect_share=0.0)
            )[1]
        ).any()
        for i in range(10)
    ]
    assert not any(none)
    half = defects.defect_batch(
        cfg.__class__(defect_share=0.5), jnp.tile(image.reshape(1, -1), (200, 1)), jax.random.key(1)
    )[1]
    assert 0.3 < float(jnp.mean(jnp.any(half > 0, axis=1))) < 0.7


def test_cutpaste_defects_paste_a_rectangle_of_the_same_image_elsewhere():
    rng = np.random.default_rng(3)
    image = jnp.asarray(rng.uniform(0.0, 1.0, (32, 32, 3)), jnp.float32)
    cfg = defects.DefectsConfig(defect_share=1.0, cutpaste_share=1.0)
    areas = []
    for i in range(20):
        key = jax.random.key(i)
        out, mask = defects.synthetic_defects(key, image, image[::-1], cfg)
        use, rect, patch = defects.cut_paste(jax.random.fold_in(key, 1), image, 1.0)
        rect, patch, mask = np.asarray(rect), np.asarray(patch), np.asarray(mask)
        assert bool(use) and np.array_equal(mask, rect.astype(np.float32))
        rows, cols = np.flatnonzero(rect.any(1)), np.flatnonzero(rect.any(0))
        assert rect.sum() == len(rows) * len(cols)  # one axis-aligned rectangle
        assert 2 <= len(rows) <= 16 and 2 <= len(cols) <= 16
        # inside it the image itself from another place (a shift of both axes), outside unchanged
        shifts = [
            (a, b)
            for a in range(32)
            for b in range(32)
            if np.array_equal(np.roll(image, (a, b), (0, 1)), patch)
        ]
        assert len(shifts) == 1 and shifts[0] != (0, 0)
        np.testing.assert_array_equal(np.asarray(out), np.where(rect[..., None], patch, image))
        areas.append(rect.mean())
    assert 0.01 < np.mean(areas) < 0.12
    with pytest.raises(ValueError, match="cutpaste_share"):
        defects.DefectsConfig(cutpaste_share=1.5)


def test_balanced_loss_weights_defect_and_normal_pixels_equally():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 16)).astype(np.float32)
    masks = (rng.uniform(size=(3, 16)) < 0.2).astype(np.float32)
    rows = np.array([1.0, 1.0, 0.0], np.float32)  # the last row is padding
    ce = np.logaddexp(0, logits) - logits * masks  # sigmoid cross-entropy
    pos, neg = masks[:2] == 1, masks[:2] == 0
    expected = 0.5 * (ce[:2][pos].mean() + ce[:2][neg].mean())
    got = defects.balanced_loss(jnp.asarray(logits), jnp.asarray(masks), jnp.asarray(rows))
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)


def test_packed_network_keeps_every_pixel():
    x = jnp.arange(2 * 8 * 8 * 1, dtype=jnp.float32).reshape(2, 8, 8, 1)
    packed = _space_to_depth(x, 2)
    assert packed.shape == (2, 4, 4, 4)
    np.testing.assert_array_equal(packed[0, 1, 2], np.asarray(x)[0, 2:4, 4:6, 0].ravel())
    np.testing.assert_array_equal(_depth_to_space(packed, 2), x[..., 0])
    net = SegmentationNet((16, 16, 1), (4, 8, 8), pack=2)
    params = net.init(jax.random.key(0), jnp.zeros((1, 256)))
    assert net.apply(params, jnp.zeros((3, 256))).shape == (3, 256)
    with pytest.raises(ValueError, match="divides by 8"):
        defects.build_model(defects.DefectsConfig(channels=(4, 8, 8), pack=2), 12 * 12)
    with pytest.raises(ValueError, match="square grey or RGB images"):
        defects.build_model(defects.PRESETS["tiny"], 250)
    assert defects.image_shape(16 * 16 * 3, defects.PRESETS["tiny"]) == (16, 16, 3)
    assert defects.image_shape(16 * 16, defects.PRESETS["tiny"]) == (16, 16, 1)


def test_config_checks():
    for bad in (
        {"pack": 0},
        {"line_share": 1.5},
        {"smooth": 4},
        {"channels": ()},
        {"auto_epochs": 0},
        {"auto_batch": 0},
        {"bank_levels": 3, "channels": (4, 8)},
        {"bank_pool": 2},
        {"bank_size": 1500},
        {"bank_top": 0},
        {"bank_scale": -1},
    ):
        with pytest.raises(ValueError):
            defects.DefectsConfig(**bad)
    assert defects.DefectsConfig(channels=[8, 16]).channels == (8, 16)  # JSON lists
    cfg = defects.PRESETS["tiny"]
    auto = defects.train_length(cfg, TrainConfig())
    assert (auto.epochs, auto.batch_size) == (cfg.auto_epochs, cfg.auto_batch)
    given = defects.train_length(cfg, TrainConfig(epochs=3, batch_size=64))
    assert (given.epochs, given.batch_size) == (3, 64)


def test_maps_find_the_defects(defect_tiles, fitted_tiles):
    out = defects.DETECTOR.score(fitted_tiles, defect_tiles.x_test, key=jax.random.key(1))
    maps = np.asarray(out["map"]).reshape(-1, 16, 16)
    assert roc_auc_score(defect_tiles.y_test, out["score"]) > 0.9
    assert roc_auc_score(defect_tiles.masks.ravel(), maps.ravel()) > 0.9
    # the map's maximum sits on (or next to) the defect
    hits = [
        np.abs(np.argwhere(m)[:, None] - np.array(np.unravel_index(a.argmax(), a.shape))).max(-1).min() <= 2
        for m, a in zip(defect_tiles.masks[40:], maps[40:], strict=True)
    ]
    assert np.mean(hits) > 0.8


def test_colour_photographs_train_and_find_their_defects(defect_tiles):
    tint = np.array([1.0, 0.8, 0.6], np.float32)  # each pixel's three values together

    def rgb(rows):
        return (rows.reshape(-1, 16, 16, 1) * tint).reshape(len(rows), -1)

    cfg = defects.PRESETS["tiny"]
    images, masks = defects.defect_batch(cfg, jnp.asarray(rgb(defect_tiles.x_train[:8])), jax.random.key(2))
    assert images.shape == (8, 16 * 16 * 3) and masks.shape == (8, 16 * 16)  # a mask per pixel
    fitted = defects.DETECTOR.fit(
        cfg,
        TrainConfig(epochs=20, batch_size=32),
        rgb(defect_tiles.x_train),
        key=jax.random.key(0),
        progress=False,
    )
    out = defects.DETECTOR.score(fitted, rgb(defect_tiles.x_test))
    assert out["map"].shape == (len(defect_tiles.x_test), 16 * 16)
    assert roc_auc_score(defect_tiles.y_test, out["score"]) > 0.9
    assert roc_auc_score(defect_tiles.masks.ravel(), out["map"].ravel()) > 0.9


def test_mirrored_map_is_the_mean_of_the_mirror_images_maps(defect_tiles, fitted_tiles):
    plain = defects.DefectsConfig(channels=(4, 8), pack=1, smooth=1, mirrors=False, bank_map=False)
    one = jax.jit(defects.make_sample_scorer(plain, 256))
    mirrored = jax.jit(defects.make_sample_scorer(dataclasses.replace(plain, mirrors=True), 256))
    params = fitted_tiles.params  # {'net', 'bank', 'sq', 'scale'}
    image = np.asarray(defect_tiles.x_test[45]).reshape(16, 16)
    views = [(image, lambda m: m), (image[::-1], lambda m: m[::-1]), (image[:, ::-1], lambda m: m[:, ::-1])]
    views.append((image[::-1, ::-1], lambda m: m[::-1, ::-1]))
    expected = np.mean(
        [back(np.asarray(one(params, v.ravel())["map"]).reshape(16, 16)) for v, back in views], 0
    )
    got = mirrored(params, image.ravel())
    np.testing.assert_allclose(np.asarray(got["map"]).reshape(16, 16), expected, rtol=1e-5, atol=1e-6)
    assert float(got["segmenter"]) == pytest.approx(expected.max(), rel=1e-5)


def test_map_is_the_probability_times_the_upsampled_bank_distance(defect_tiles, fitted_tiles):
    cfg = defects.PRESETS["tiny"]  # its patch grid is the image's 16x16; the default power 0.5
    alone = jax.jit(defects.make_sample_scorer(dataclasses.replace(cfg, bank_map=False), 256))
    params = fitted_tiles.params
    x = defect_tiles.x_test[45]
    prob = alone(params, x)
    for power in (cfg.bank_map, True):
        got = jax.jit(defects.make_sample_scorer(dataclasses.replace(cfg, bank_map=power), 256))(params, x)
        distance = np.asarray(got["patches"]) * np.asarray(params["scale"])  # not over the scale
        want = np.asarray(prob["map"]) * distance ** float(power)
        np.testing.assert_allclose(got["map"], want, rtol=1e-5, atol=1e-7)
        for key in ("score", "segmenter", "patches"):  # only the map changes
            np.testing.assert_array_equal(got[key], prob[key])
    assert cfg.bank_map == 0.5
    with pytest.raises(ValueError, match="bank_map must be a power >= 0"):
        defects.DefectsConfig(bank_map=-1)
    # a coarser grid: each value at its patch's centre, linear in between, flat at the edges
    up = np.asarray(defects.grid_to_pixels(jnp.array([0.0, 4.0, 0.0, 4.0]), 4)).reshape(4, 4)
    np.testing.assert_allclose(up, np.tile([0.0, 1.0, 3.0, 4.0], (4, 1)), atol=1e-6)


def test_bank_holds_every_training_patch_and_scores_by_the_nearest(defect_tiles, fitted_tiles):
    cfg = defects.PRESETS["tiny"]
    x_train = defect_tiles.x_train
    feats = np.asarray(defects.patch_features(cfg, 256)(fitted_tiles.params["net"], x_train))
    n, p, c = feats.shape
    assert (p, c) == (16 * 16, 4 + 8) and n * p <= cfg.bank_size
    bank, sq = np.asarray(fitted_tiles.params["bank"]), np.asarray(fitted_tiles.params["sq"])
    written = np.isfinite(sq)
    assert written.sum() == n * p  # every patch once, the rest never a neighbour
    # the same rows (the pass is shuffled: compare as sets of rows)
    np.testing.assert_allclose(
        np.sort(bank[written], axis=0), np.sort(feats.reshape(-1, c), axis=0), rtol=1e-5, atol=1e-6
    )
    # each position's scale: the first images of the pass (the bank's first rows), their
    # patches' mean distance to the other images' patches (brute force)
    used = min(cfg.bank_scale, n // 2)
    held, others = bank[: used * p], bank[used * p : n * p]
    held_d = NearestNeighbors(n_neighbors=1).fit(others).kneighbors(held)[0].reshape(used, p)
    scale = np.asarray(fitted_tiles.params["scale"])
    np.testing.assert_allclose(scale, held_d.mean(0), rtol=1e-3, atol=1e-4)
    # a patch's score is its distance to the nearest training patch over its position's scale
    query = np.asarray(
        defects.patch_features(cfg, 256)(fitted_tiles.params["net"], defect_tiles.x_test[45:46])
    )[0]
    brute = np.sqrt(((query[:, None] - feats.reshape(-1, c)[None]) ** 2).sum(-1)).min(1) / scale
    got = defects.DETECTOR.score(fitted_tiles, defect_tiles.x_test[45:46])
    np.testing.assert_allclose(got["patches"][0], brute, rtol=1e-3, atol=1e-4)
    assert float(got["score"][0]) == pytest.approx(np.sort(brute)[-cfg.bank_top :].mean(), rel=1e-3)
    # a model fitted before the scale existed: a clear error
    old = dataclasses.replace(
        fitted_tiles, params={k: v for k, v in fitted_tiles.params.items() if k != "scale"}
    )
    with pytest.raises(ValueError, match="fitted before bank_scale existed"):
        defects.DETECTOR.score(old, defect_tiles.x_test[:2])
    # a training image is at distance 0 from the bank
    assert float(defects.DETECTOR.score(fitted_tiles, x_train[:1])["score"][0]) < 1e-2


def test_a_small_bank_keeps_the_last_patches_and_none_without_levels(defect_tiles):
    train = TrainConfig(epochs=1, batch_size=32)
    x = defect_tiles.x_train[:40]
    small = dataclasses.replace(defects.PRESETS["tiny"], bank_size=1024)  # 4 of the 40 images
    fitted = defects.DETECTOR.fit(small, train, x, key=jax.random.key(0), progress=False)
    sq = np.asarray(fitted.params["sq"])
    assert np.isfinite(sq).all()
    # the scale from the first 2 images (half of those the ring holds) against the rest
    assert np.isfinite(fitted.params["scale"]).all() and (np.asarray(fitted.params["scale"]) > 0).all()
    feats = np.asarray(defects.patch_features(small, 256)(fitted.params["net"], x)).reshape(40, 256, -1)
    bank = np.asarray(fitted.params["bank"]).reshape(4, 256, -1)
    # the ring holds whole images, each one of the training images
    for image in bank:
        assert min(np.abs(image - f).max() for f in feats) < 1e-5
    none = dataclasses.replace(small, bank_levels=0)
    fitted = defects.DETECTOR.fit(none, train, x, key=jax.random.key(0), progress=False)
    out = defects.DETECTOR.score(fitted, defect_tiles.x_test[:4])
    np.testing.assert_array_equal(out["score"], out["segmenter"])
    assert "patches" not in out
    np.testing.assert_array_equal(fitted.params["scale"], 1.0)


def test_estimator_saves_loads_and_exports(tmp_path, defect_tiles):
    import jax_anomaly as ja
    from jax_anomaly.serving import load_exported

    est = ja.DefectSegmenter(preset="tiny", epochs=1, batch_size=32, seed=0).fit(defect_tiles.x_train)
    scores = est.decision_function(defect_tiles.x_test[:20])
    assert set(est.fitted_.state) == {"train"}  # the bank phase's state is its parameters: kept once
    est.save(tmp_path / "model")
    np.testing.assert_array_equal(
        ja.load(tmp_path / "model").decision_function(defect_tiles.x_test[:20]), scores
    )
    est.export(tmp_path / "exported")
    np.testing.assert_allclose(
        load_exported(tmp_path / "exported")(defect_tiles.x_test[:20]), scores, rtol=1e-4, atol=1e-4
    )


def test_photographs_streamed_from_disk_train_and_score_as_in_memory(defect_tiles, tmp_path, monkeypatch):
    from jax_anomaly.detectors import base

    def on_disk(name, rows):
        mapped = np.lib.format.open_memmap(tmp_path / name, "w+", np.float32, rows.shape)
        mapped[:] = rows
        mapped.flush()
        return np.load(tmp_path / name, mmap_mode="r")

    x, test = defect_tiles.x_train[:100], defect_tiles.x_test
    cfg, train = defects.PRESETS["tiny"], TrainConfig(epochs=2, batch_size=16)
    disk_x, disk_test = on_disk("train.npy", x), on_disk("test.npy", test)
    assert np.shares_memory(base.check_features(disk_x), disk_x)  # checked without a copy
    in_memory = defects.DETECTOR.fit(cfg, train, x, key=jax.random.key(3), progress=False)
    streamed = defects.DETECTOR.fit(
        cfg, dataclasses.replace(train, stream_rows=40), disk_x, key=jax.random.key(3), progress=False
    )
    # both phases (the training steps, the bank's pass) from 2-batch chunks
    for a, b in zip(jax.tree.leaves(streamed.params), jax.tree.leaves(in_memory.params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
    monkeypatch.setattr(base, "SCORE_BYTES", test.nbytes // 3)  # a large set: scored by parts
    monkeypatch.setattr(base, "CHECK_BYTES", test.nbytes // 5)  # and checked by parts
    got, want = defects.DETECTOR.score(streamed, disk_test), defects.DETECTOR.score(in_memory, test)
    for key in ("score", "map", "patches"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-5)
    bad = np.array(test)
    bad[-1, 0] = np.nan  # in the last part checked
    with pytest.raises(ValueError, match="contains NaN"):
        defects.DETECTOR.score(streamed, bad)
