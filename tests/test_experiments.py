"""The runnable examples under experiments/ (the extension example, the one-class table)."""

import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import jax_anomaly as ja

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _module(name):
    spec = importlib.util.spec_from_file_location(f"experiments_{name}", EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_custom_detector_example_runs_and_plugs_in(tmp_path):
    example = _module("custom_detector")
    summary = example.main(["--epochs", "20", "--out", str(tmp_path)])
    assert summary["detector"] == "deep_svdd" and summary["metrics"]["auroc"] > 0.9
    # the package's save/load works for it unchanged
    loaded = ja.load(tmp_path / "model")
    scores = np.loadtxt(tmp_path / "scores.csv", delimiter=",", skiprows=1, usecols=4)
    assert loaded.fitted_.detector == "deep_svdd" and len(scores) == summary["data"]["n_test"]


def test_one_class_quick_table(tmp_path):
    table = _module("one_class").main(
        ["--dataset", "digits", "--detector", "ae", "--quick", "--runs", "--out", str(tmp_path)]
    )
    assert [r["class"] for r in table["classes"]] == [0, 1]
    assert all(
        0 <= r["auroc"] <= 1 and r["train_seconds"] > 0 for r in table["classes"]
    )  # 1 epoch: a smoke run
    saved = json.loads((tmp_path / "one_class_digits_ae_quick.json").read_text())
    assert saved["mean_auroc"] == table["mean_auroc"]
    assert "| **mean** |" in (tmp_path / "one_class_digits_ae_quick.md").read_text()
    page = (tmp_path / "one_class_digits_ae_quick.html").read_text()
    assert page.count("<img ") == 1 and f"{table['mean_auroc']:.4g}" in page
    links = re.findall(r'href="([^"]+)"', page)
    assert len(links) == 2 and all((tmp_path / link).is_file() for link in links)  # each class's report


def test_one_class_stacked_geom_table_becomes_suite_cells(tmp_path):
    """geom, two digit classes stacked, with the suite's settings (5 epochs of batch 64); each
    class recorded as the one_class suite's cell, which the suite then counts as done."""
    from jax_anomaly.suites import run_suite

    one_class = _module("one_class")
    with pytest.raises(SystemExit):
        one_class.parse_args(["--detector", "geom", "--epochs", "2", "--suite-cells", str(tmp_path)])
    table = one_class.main(
        ["--dataset", "digits", "--detector", "geom", "--classes", "0,1", "--quiet"]
        + ["--out", str(tmp_path), "--suite-cells", str(tmp_path / "suite")]
    )
    assert table["epochs"] == 5 and table["batch_size"] == 64 and table["stack"]["models"] == 2
    assert table["mean_auroc"] > 80  # digits 0 and 1 against the other nine
    cells = sorted((tmp_path / "suite" / "cells" / "geom").glob("*.json"))
    assert [c.name for c in cells] == ["digits_0__seed0.json", "digits_1__seed0.json"]
    record = json.loads(cells[0].read_text())
    assert record["metrics"]["auroc"] == table["classes"][0]["auroc"] and record["stacked"]
    combiner = _module("combine_scores")
    saved = combiner.load_scores(tmp_path / "one_class_digits_geom_scores.npz")  # the stacked scores
    assert sorted(saved) == [0, 1]
    assert roc_auc_score(saved[1]["labels"], saved[1]["test"]) == pytest.approx(table["classes"][1]["auroc"])
    # The detector's other scores of the same models, saved and loadable as PATH:PART.
    part = combiner.load_scores(f"{tmp_path / 'one_class_digits_geom_scores.npz'}:mahalanobis")
    auroc = table["classes"][1]["part_aurocs"]["mahalanobis"]
    assert roc_auc_score(part[1]["labels"], part[1]["test"]) == pytest.approx(auroc)
    assert not np.array_equal(part[1]["test"], saved[1]["test"]) and len(part[1]["held_out"])
    with pytest.raises(ValueError, match="no score 'nothing'"):
        combiner.load_scores(f"{tmp_path / 'one_class_digits_geom_scores.npz'}:nothing")
    before = [c.read_text() for c in cells]
    run_suite(
        "one_class",
        detectors=["geom"],
        seeds=[0],
        sets=["digits:0", "digits:1"],
        options={"datasets": ("digits",)},
        out=tmp_path / "suite",
        progress=False,
    )  # fmt: skip  (the recorded cells count as done: nothing trains, nothing is rewritten)
    assert [c.read_text() for c in cells] == before
    table = json.loads((tmp_path / "suite" / "table.json").read_text())
    assert "geom" in json.dumps(table)


def test_combined_scores_are_the_standardised_mean(tmp_path):
    """Two tables that each see a different half of the anomalies: the combination sees both."""
    combiner = _module("combine_scores")
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(100), np.ones(100)].astype(int)
    seen = [np.r_[np.zeros(150), 4 * np.ones(50)], np.r_[np.zeros(100), 4 * np.ones(50), np.zeros(50)]]
    tables = [
        {
            0: {
                "test": 10 * k + (k + 1) * (rng.normal(size=200) + s),
                "held_out": 10 * k + (k + 1) * rng.normal(size=50),
                "labels": labels,
            }
        }
        for k, s in enumerate(seen)
    ]
    for k, table in enumerate(tables):
        np.savez(tmp_path / f"t{k}_scores.npz", **{f"{p}_0": v for p, v in table[0].items()})
    result = combiner.main(
        [str(tmp_path / "t0_scores.npz"), str(tmp_path / "t1_scores.npz"), "--out", str(tmp_path / "c.json")]
    )
    row = result["classes"][0]
    assert row["combined"] > max(row["t0"], row["t1"]) + 10  # each alone finds half of them
    z = [(t[0]["test"] - t[0]["held_out"].mean()) / t[0]["held_out"].std() for t in tables]
    assert row["combined"] == pytest.approx(100 * roc_auc_score(labels, np.mean(z, axis=0)))
    assert json.loads((tmp_path / "c.json").read_text())["mean"]["combined"] == row["combined"]
    tables[1][0]["labels"] = labels[::-1]
    with pytest.raises(ValueError, match="test labels differ"):
        combiner.combine_tables(tables, ["a", "b"])


def test_one_class_model_overrides(tmp_path):
    one_class = _module("one_class")
    args = one_class.parse_args(["--model", "latent=4", "--model", "activation=tanh", "--tag", "v"])
    assert args.model == {"latent": 4, "activation": "tanh"}
    table = one_class.main(
        ["--dataset", "digits", "--classes", "0", "--epochs", "1", "--model", "latent=4"]
        + ["--tag", "l4", "--out", str(tmp_path)]
    )
    assert table["classes"][0]["model"]["latent"] == 4 and table["overrides"] == {"latent": 4}
    assert "latent=4" in (tmp_path / "one_class_digits_ae_l4.md").read_text()
    with pytest.raises(SystemExit):
        one_class.parse_args(["--model", "latent"])
    with pytest.raises(ValueError, match="no option"):
        one_class.main(["--dataset", "digits", "--classes", "0", "--model", "nosuch=1"])


def test_one_class_seed_ensemble(tmp_path):
    one_class = _module("one_class")
    argv = ["--dataset", "digits", "--classes", "0", "--epochs", "10", "--out", str(tmp_path)]
    single = one_class.main(argv)
    table = one_class.main(argv + ["--ensemble", "0,1"])
    row = table["classes"][0]
    # seed 0's member is the single run (same split, same model seed, same library path)
    assert abs(row["seed_aurocs"][0] - single["classes"][0]["auroc"]) < 1e-6
    assert len(row["seed_aurocs"]) == 2 and row["auroc"] > 0.9
    assert "ensemble of seeds [0, 1]" in (tmp_path / "one_class_digits_ae_ens2.md").read_text()


def test_one_class_stacked_table_with_a_standardised_score_equals_separate_runs(tmp_path):
    """Each model of the stack gets the pixel scale of its own class's held-out rows: the
    stacked table equals the classes run one at a time through ``jax_anomaly.run``."""
    one_class = _module("one_class")
    argv = ["--dataset", "digits", "--classes", "0,1", "--epochs", "3", "--model", "score=mean3_std"]
    stacked = one_class.main(argv + ["--out", str(tmp_path / "s")])
    separate = one_class.main(argv + ["--separate", "--out", str(tmp_path / "p")])
    for a, b in zip(stacked["classes"], separate["classes"], strict=True):
        assert abs(a["auroc"] - b["auroc"]) < 1e-6
    assert stacked["classes"][0]["model"]["score"] == "mean3_std"


def test_image_scores_table_of_a_model_variant(tmp_path):
    table = _module("image_scores").main(
        ["--dataset", "digits", "--quick", "--out", str(tmp_path), "--model", "latent=4", "--tag", "l4"]
    )
    assert table["model"]["latent"] == 4 and [r["class"] for r in table["classes"]] == [0, 1]
    assert set(table["mean"]) >= {"loss", "mean3", "peak3", "peak3_std"}
    # after one epoch, digit 0 is already told from the other digits (digit 1 is not yet)
    assert min(table["classes"][0]["auroc"][s] for s in ("loss", "mean3", "peak3")) > 80
    assert set(table["fpr"]) == set(table["mean"]) and all(0 <= v <= 100 for v in table["fpr"].values())
    text = (tmp_path / "image_scores_digits_l4_quick.md").read_text()
    assert "D-256-128-4" in text and "peak3" in text and "test normals flagged" in text


def test_defect_features_distances_and_feature_maps(defect_tiles):
    import dataclasses

    import jax
    from sklearn.neighbors import NearestNeighbors

    from jax_anomaly.config import TrainConfig
    from jax_anomaly.detectors import defects

    exp = _module("defect_features")

    cfg = defects.PRESETS["tiny"]  # 16x16 grey, channels 4, 8
    fitted = defects.DETECTOR.fit(
        cfg,
        TrainConfig(epochs=2, batch_size=32),
        defect_tiles.x_train[:64],
        key=jax.random.key(0),
        progress=False,
    )
    net = fitted.params["net"]
    maps = exp.feature_maps(cfg, net, defect_tiles.x_test[:7], batch=4)
    assert maps.shape == (7, 256, 12) and (maps >= 0).all()
    # The experiment's patch scores are the detector's: its distances over the positions' scale
    # (here from the bank's first 4 images), against brute force.
    test = exp.feature_maps(cfg, net, defect_tiles.x_test[:7])
    train = exp.feature_maps(cfg, net, defect_tiles.x_train[:64])
    far = exp.patch_scores(dataclasses.replace(cfg, bank_scale=4), train, test)
    nearest = NearestNeighbors(n_neighbors=1).fit(train.reshape(-1, 12))
    held = (
        NearestNeighbors(n_neighbors=1).fit(train[4:].reshape(-1, 12)).kneighbors(train[:4].reshape(-1, 12))
    )
    scale = held[0].reshape(4, 256).mean(0)
    want = nearest.kneighbors(test.reshape(-1, 12))[0].reshape(7, 256) / scale
    np.testing.assert_allclose(far, want, rtol=1e-3, atol=1e-4)
    # without the scale, the detector's own bank (every training patch) gives the same distances
    plain = exp.patch_scores(dataclasses.replace(cfg, bank_scale=0), train, test)
    got = defects.DETECTOR.score(fitted, defect_tiles.x_test[:7])["patches"] * fitted.params["scale"]
    np.testing.assert_allclose(plain, got, rtol=1e-3, atol=1e-4)
    assert exp.upsampled(far, 32).shape == (7, 32, 32)
    # One level: the deepest alone, on its own (coarser) grid.
    deep = exp.feature_maps(
        dataclasses.replace(cfg, bank_levels=1, bank_pool=1), net, defect_tiles.x_test[:7]
    )
    assert deep.shape == (7, 64, 8)
