"""The four suites on tiny generated collections: they run from Python and the CLI, survive
an interruption (the rerun gives the same table), record a failing cell and go on."""

import dataclasses
import gzip
import json

import numpy as np
import pytest
from PIL import Image

import jax_anomaly as ja
from jax_anomaly import suites
from jax_anomaly.cli import main
from jax_anomaly.data.idx import write_idx
from jax_anomaly.data.series import load_tsb
from jax_anomaly.estimators import estimator_for
from jax_anomaly.metrics import pro_auc
from jax_anomaly.suites import adbench
from jax_anomaly.suites.ucr import ucr_accuracy

TINY_AE = {"preset": "tiny", "epochs": 2, "batch_size": 64}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A data root with two ADBench sets, two UCR series, magnetic tiles and a tiny MNIST."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    (root / "adbench").mkdir()
    for stem, n in (("1_small", 300), ("2_plain", 1100)):
        y = (rng.random(n) < 0.1).astype(np.int64)
        np.savez(root / "adbench" / f"{stem}.npz", X=rng.normal(size=(n, 5)) + 4 * y[:, None], y=y)
    (root / "ucr_anomaly").mkdir()
    for sid, at in ((1, 700), (2, 820)):
        values = np.sin(np.arange(1000) * 2 * np.pi / 25) + 0.01 * rng.normal(size=1000)
        values[at : at + 10] += 3.0
        with gzip.open(
            root / "ucr_anomaly" / f"00{sid}_UCR_Anomaly_Sine{sid}_400_{at}_{at + 10}.txt.gz", "wt"
        ) as f:
            f.write("\n".join(f"{v:.5f}" for v in values))
    tiles = root / "magnetic_tile"
    for i in range(16):
        img = 120 + rng.integers(0, 10, (24, 24))
        folder = tiles / "MT_Free" / "Imgs"
        kind_defect = i >= 12
        if kind_defect:
            folder = tiles / "MT_Crack" / "Imgs"
            img[5:12, 5:12] = 250
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.astype(np.uint8)).save(folder / f"t{i}.jpg", quality=95)
        mask = np.zeros((24, 24), np.uint8)
        if kind_defect:
            mask[5:12, 5:12] = 255
        Image.fromarray(mask).save(folder / f"t{i}.png")
    mnist = root / "mnist"
    mnist.mkdir()
    for split, n in (("train", 60), ("t10k", 40)):
        labels = np.arange(n) % 2
        images = np.zeros((n, 28, 28), np.uint8)
        images[labels == 0, :, :14] = 200
        images[labels == 1, :, 14:] = 200
        write_idx(mnist / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(mnist / f"{split}-labels-idx1-ubyte.gz", labels)
    return root


def test_adbench_suite_with_seeds_on_the_model_axis(root, tmp_path):
    options = {"data_dir": str(root), "estimator": TINY_AE}
    table = suites.run_suite(
        "adbench", detectors=["knn", "ae"], seeds=[0, 1], out=tmp_path, options=options, progress=False
    )
    assert set(table.ours["knn"]) == {"small", "plain"} and table.ours["knn"]["plain"] > 90
    # 'plain' is neither resampled nor subsampled: the AE's seeds train as one stacked program;
    # seed 1 there equals the estimator fitted alone with seed 1
    cell = suites.CellStore(tmp_path).get("ae", "plain", 1)
    split = adbench.split("plain", 1, {**adbench.OPTIONS, **options})
    alone = estimator_for("ae", seed=1, **TINY_AE).fit(split.x_train)
    from sklearn.metrics import roc_auc_score

    assert cell["metrics"]["auroc"] == pytest.approx(
        roc_auc_score(split.y_test, alone.decision_function(split.x_test)), abs=1e-6
    )
    text = (tmp_path / "table.md").read_text()
    assert "KNN*" in text and "| small |" in text and (tmp_path / "index.html").is_file()
    # 'small' (300 rows) is resampled to 1,000 (copies in train and test): reported apart
    assert "mean of the 1 sets not resampled" in text and "(copies of rows in train and test): small." in text
    assert json.loads((tmp_path / "table.json").read_text())["cells"]["knn"]["small"] == 2


def _interrupt_after(n):
    calls = {"n": 0}
    original = adbench.run_group

    def run_group(*args):
        if calls["n"] == n:
            raise KeyboardInterrupt
        calls["n"] += 1
        return original(*args)

    return run_group


def test_interrupted_suite_reruns_to_the_same_table(root, tmp_path, monkeypatch):
    kwargs = dict(detectors=["knn", "iforest"], seeds=[0, 1], options={"data_dir": str(root)}, progress=False)
    whole = suites.run_suite("adbench", out=tmp_path / "whole", **kwargs)
    monkeypatch.setitem(
        suites.SUITES, "adbench", dataclasses.replace(suites.SUITES["adbench"], run_group=_interrupt_after(2))
    )
    with pytest.raises(KeyboardInterrupt):
        suites.run_suite("adbench", out=tmp_path / "cut", **kwargs)
    assert len(list((tmp_path / "cut" / "cells").glob("*/*.json"))) == 4  # two groups of two seeds
    monkeypatch.undo()
    resumed = suites.run_suite("adbench", out=tmp_path / "cut", **kwargs)
    assert resumed.ours == whole.ours

    def body(path):
        return (path / "table.md").read_text().split("\n", 3)[3]  # after the header naming the folder

    assert body(tmp_path / "cut") == body(tmp_path / "whole")
    # A run of one seed and one detector in the folder keeps the table over both seeds and both.
    suites.run_suite("adbench", out=tmp_path / "whole", **{**kwargs, "seeds": [1], "detectors": ["knn"]})
    assert body(tmp_path / "whole") == body(tmp_path / "cut")
    cells = json.loads((tmp_path / "whole" / "table.json").read_text())["cells"]
    assert cells["knn"]["plain"] == cells["iforest"]["plain"] == 2


def test_a_failing_cell_is_recorded_and_the_suite_goes_on(root, tmp_path):
    table = suites.run_suite(
        "adbench",
        detectors=["nope", "knn"],
        seeds=[0],
        out=tmp_path,
        options={"data_dir": str(root)},
        progress=False,
    )
    assert {f["set"] for f in table.failed} == {"small", "plain"} and "unknown detector" in table.failed[0][
        "error"
    ]
    assert len(table.ours["knn"]) == 2
    assert "Failed cells (2)" in (tmp_path / "table.md").read_text()
    more = suites.run_suite(  # one more detector: its row joins the folder's table
        "adbench",
        detectors=["iforest"],
        seeds=[0],
        out=tmp_path,
        options={"data_dir": str(root)},
        progress=False,
    )
    assert {"iforest", "knn"} <= set(more.ours) and more.ours["knn"] == table.ours["knn"]
    assert {f["detector"] for f in more.failed} == {"nope"}  # its failures stay listed
    # A detector recorded on a subset only stays out of a table over more sets (the common
    # sets of every mean would shrink to its subset).
    suites.run_suite(
        "adbench",
        detectors=["pca"],
        seeds=[0],
        sets=["small"],
        out=tmp_path,
        options={"data_dir": str(root)},
        progress=False,
    )
    again = suites.run_suite(
        "adbench", detectors=["knn"], seeds=[0], out=tmp_path, options={"data_dir": str(root)}, progress=False
    )
    assert "pca" not in again.ours and "iforest" in again.ours and len(again.ours["knn"]) == 2


def test_a_folder_of_other_options_is_refused(root, tmp_path):
    kwargs = dict(detectors=["knn"], seeds=[0], out=tmp_path, progress=False)
    suites.run_suite("adbench", options={"data_dir": str(root)}, **kwargs)
    with pytest.raises(ValueError, match="holds cells of suite 'adbench' with options"):
        suites.run_suite("adbench", options={"data_dir": str(root), "protocol": "unsup"}, **kwargs)
    with pytest.raises(ValueError, match="use another --out"):
        suites.run_suite("ucr", options={"data_dir": str(root)}, **kwargs)


def test_ucr_suite_finds_the_spikes(root, tmp_path):
    table = suites.run_suite(
        "ucr",
        detectors=["knn", "discord"],
        out=tmp_path,
        options={"data_dir": str(root), "window": 25},
        progress=False,
    )
    assert table.ours["knn"] == {"001": 1.0, "002": 1.0} and table.ours["discord"] == {"001": 1.0, "002": 1.0}
    assert "TimeVQVAE-AD: 0.708" in (tmp_path / "table.md").read_text()


def test_ucr_suite_runs_the_default_discords_and_tsb_ad_multivariate_files(root, tmp_path):
    table = suites.run_suite(
        "ucr", detectors=["discords"], out=tmp_path / "u", options={"data_dir": str(root)}, progress=False
    )
    assert table.ours["discords"] == {"001": 1.0, "002": 1.0}
    # A TSB-AD-M file: three value columns, a Label column, two events after the training part.
    folder = tmp_path / "tsb"
    folder.mkdir()
    rng = np.random.default_rng(1)
    t = np.arange(1500)
    x = np.column_stack([np.sin(2 * np.pi * t / 30), np.cos(2 * np.pi * t / 30), 0.1 * rng.normal(size=1500)])
    label = np.zeros(1500, int)
    for at in (900, 1200):
        x[at : at + 15, 1] = 0.0
        label[at : at + 15] = 1
    header = "0,1,2,Label"
    rows = [",".join(f"{v:.5f}" for v in r) + f",{y}" for r, y in zip(x, label, strict=True)]
    (folder / "001_Toy_id_1_Sensor_tr_500_1st_900.csv").write_text("\n".join([header, *rows]) + "\n")
    (folder / "notes.txt").write_text("not a series")
    table = suites.run_suite(
        "ucr", detectors=["discords"], out=tmp_path / "m", options={"folder": str(folder)}, progress=False
    )
    name = "001_Toy_id_1_Sensor_tr_500_1st_900"
    assert table.ours["discords"] == {name: 1.0}
    s = load_tsb(folder / f"{name}.csv")
    assert s.values.shape == (1500, 3) and s.train_end == 500 and s.anomalies == ((900, 915), (1200, 1215))


def test_ucr_accuracy_counts_the_padded_anomaly():
    scores = np.zeros(1000)
    scores[650] = 1.0
    assert ucr_accuracy(scores, 400, 700, 710) == (True, 650)
    assert ucr_accuracy(scores, 400, 800, 810) == (False, 650)
    scores[100] = 5.0  # inside the training part: not counted
    assert ucr_accuracy(scores, 400, 700, 710)[0]
    assert ucr_accuracy(scores, 400, 800, 810, events=((800, 810), (600, 640)))[0]  # any event


def test_magnetic_tile_suite_scores_images_and_pixels(root, tmp_path):
    options = {"data_dir": str(root), "size": 16, "estimator": TINY_AE}
    suites.run_suite(
        "magnetic_tile", detectors=["knn", "ae"], seeds=[0], out=tmp_path, options=options, progress=False
    )
    knn = suites.CellStore(tmp_path).get("knn", "magnetic_tile", 0)["metrics"]
    ae = suites.CellStore(tmp_path).get("ae", "magnetic_tile", 0)["metrics"]
    assert knn["image_auroc"] == 1.0 and "pixel_auroc" not in knn and knn["n_train"] == 9
    assert knn["part_auroc"] == {}
    assert 0 <= ae["pro"] <= 1 and ae["pixel_auroc"] is not None and set(ae["kind_auroc"]) == {"MT_Crack"}
    assert set(ae["kind_pixel_auroc"]) == set(ae["kind_pro"]) == {"MT_Crack"}  # one kind: the overall figures
    assert ae["kind_pixel_auroc"]["MT_Crack"] == ae["pixel_auroc"] and ae["kind_pro"]["MT_Crack"] == ae["pro"]
    # Single-valued metrics a column each; the per-kind ones a row per detector and kind.
    md = (tmp_path / "table.md").read_text()
    assert "| detector | pixel_auroc | pro |" in md
    assert "| detector | key | kind_auroc | kind_pixel_auroc | kind_pro |" in md
    assert f"| ae | MT_Crack | {100 * ae['kind_auroc']['MT_Crack']:.2f} |" in md


def test_photographs_default_to_the_defect_segmenter_at_its_size(root, tmp_path, monkeypatch):
    """``run --dataset magnetic_tile`` without a detector runs ``defects`` on tiles resized to
    its preset's side (tiny: 16), in memory or streamed from disk alike; the suite resizes for
    each detector the same way."""
    out = tmp_path / "run"
    argv = ["run", "--dataset", "magnetic_tile", "--data-dir", str(root), "--preset", "tiny"]
    assert main([*argv, "--epochs", "2", "--batch-size", "8", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["detector"] == "defects" and summary["data"]["n_features"] == 16 * 16
    assert (out / "plots" / "maps.png").is_file() and "maps" in (out / "report.html").read_text()
    # judged against the masks, by defect kind, as the suite judges it
    d = summary["defects"]
    assert set(d["kind_auroc"]) == set(d["kind_pro"]) == {"MT_Crack"} and 0.5 < d["pixel_auroc"] <= 1
    assert d["kind_pixel_auroc"]["MT_Crack"] == d["pixel_auroc"] and 0 <= d["pro"] <= 1
    assert "By defect kind" in (out / "report.html").read_text()
    knn = tmp_path / "knn"  # no map: the image AUROC by kind alone
    assert main([*argv, "--detector", "knn", "--out", str(knn), "--quiet", "--no-plots"]) == 0
    assert set(json.loads((knn / "metrics.json").read_text())["defects"]) == {"kind_auroc"}
    # Streamed from disk: the photographs decoded into the run folder, the split's rows memory
    # maps there, the batches sent 8 rows at a time; the same scores.
    streamed = tmp_path / "streamed"
    flags = ["--epochs", "2", "--batch-size", "8", "--stream-rows", "8", "--quiet"]
    assert main([*argv, *flags, "--out", str(streamed)]) == 0
    assert (streamed / "scores.csv").read_text() == (out / "scores.csv").read_text()
    assert {p.name for p in (streamed / "data").iterdir()} == {"images", "train.npy", "val.npy", "test.npy"}
    assert (streamed / "data" / "images" / "images.npy").is_file()
    colour = tmp_path / "colour"  # the same photographs as RGB rows
    assert main([*argv, "--rgb", "--epochs", "1", "--batch-size", "8", "--out", str(colour), "--quiet"]) == 0
    summary = json.loads((colour / "metrics.json").read_text())
    assert summary["data"]["n_features"] == 16 * 16 * 3 and (colour / "plots" / "maps.png").is_file()
    options = {"data_dir": str(root), "estimator": {"preset": "tiny", "epochs": 2, "batch_size": 8}}
    calls = []
    run_group = suites.SUITES["magnetic_tile"].run_group

    def counted(detector, name, seeds, options):
        calls.append(list(seeds))
        return run_group(detector, name, seeds, options)

    monkeypatch.setitem(
        suites.SUITES, "magnetic_tile", dataclasses.replace(suites.SUITES["magnetic_tile"], run_group=counted)
    )
    suites.run_suite(
        "magnetic_tile",
        detectors=["defects"],
        seeds=[0, 1],
        out=tmp_path / "s",
        options={**options, "models": str(tmp_path / "models")},  # a location: not in suite.json
        progress=False,
    )
    assert calls == [[0], [1]]  # one seed a call: each cell recorded as it ends
    saved = ja.load(tmp_path / "models" / "defects_seed1")  # each cell's fitted estimator
    assert saved.score_details(np.zeros((2, 16 * 16), np.float32))["map"].shape == (2, 16 * 16)
    assert [f.name for f in (tmp_path / "s" / "figures").iterdir()] == ["defects_seed0.png"]
    cell = suites.CellStore(tmp_path / "s").get("defects", "magnetic_tile", 0)["metrics"]
    assert cell["size"] == 16 and 0 <= cell["pro"] <= 1 and 0 <= cell["pixel_auroc"] <= 1
    assert set(cell["part_auroc"]) == {"segmenter"}  # the map's maximum, beside the bank's score
    assert "| defects | segmenter |" in (tmp_path / "s" / "table.md").read_text()
    assert (tmp_path / "s" / "figures" / "defects_seed0.png").is_file()  # maps over the tiles
    assert "defects_seed0" in (tmp_path / "s" / "index.html").read_text()
    # The cell computed again (its file removed): its figure is drawn again, seed 1 still has none.
    figure = tmp_path / "s" / "figures" / "defects_seed0.png"
    figure.write_bytes(b"stale")
    next((tmp_path / "s" / "cells" / "defects").glob("*seed0*")).unlink()
    suites.run_suite(
        "magnetic_tile", detectors=["defects"], seeds=[0, 1], out=tmp_path / "s", options=options
    )
    assert figure.read_bytes()[:4] == b"\x89PNG" and calls[-1] == [0]
    assert [f.name for f in (tmp_path / "s" / "figures").iterdir()] == ["defects_seed0.png"]


def test_one_class_suite_through_the_cli(root, tmp_path):
    out = tmp_path / "oc"
    code = main(
        [
            "suite",
            "one_class",
            "--data-dir",
            str(root),
            "--sets",
            "mnist:0,mnist:1",
            "--out",
            str(out),
            "--option",
            "datasets=('mnist',)",
            "--option",
            "epochs=2",
            "--option",
            "batch_size=16",
            "--quiet",
        ]
    )
    assert code == 0
    record = suites.CellStore(out).get("ae", "mnist:1", 0)
    assert record["metrics"]["auroc"] > 0.9
    assert main(["suite", "one_class", "--option", "nope=1", "--quiet"]) == 2


def test_pro_of_perfect_and_of_inverted_maps():
    masks = np.zeros((3, 8, 8), bool)
    masks[0, 2:4, 2:4] = masks[1, 5:7, 1:3] = True
    assert pro_auc(masks, masks.astype(float)) == pytest.approx(1.0)
    assert pro_auc(masks, 1.0 - masks) < 0.05
    with pytest.raises(ValueError, match="defect pixels and normal pixels"):
        pro_auc(np.zeros((1, 4, 4), bool), np.zeros((1, 4, 4)))
