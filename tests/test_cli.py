import json

import pytest

from jax_anomaly.cli import main


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert (
        main(
            [
                "demo",
                "--epochs",
                "30",
                "--out",
                str(out),
                "--quiet",
                "--compare-threshold",
                "test_percentile:95",
            ]
        )
        == 0
    )
    for f in [
        "metrics.json",
        "config.json",
        "scores.csv",
        "history.json",
        "model/manifest.json",
        "model/state.msgpack",
        "plots/loss.png",
        "plots/scores.png",
        "plots/roc.png",
        "plots/reconstructions.png",
    ]:
        assert (out / f).is_file(), f
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["metrics"]["auroc"] > 0.9
    assert "test_percentile:95" in summary["compare_thresholds"]
    assert any("oracle" in k for k in summary["compare_thresholds"])
    assert summary["timings"]["train_samples_per_second"] > 0
    rows = (out / "scores.csv").read_text().splitlines()
    assert (
        rows[0] == "index,source_row,label,class,score,predicted"
        and len(rows) == summary["data"]["n_test"] + 1
    )
    printed = capsys.readouterr().out
    assert "AUROC" in printed and "F1" in printed and str(out) in printed


def test_run_synthetic_mean_std(tmp_path):
    assert (
        main(
            [
                "run",
                "--dataset",
                "synthetic",
                "--epochs",
                "20",
                "--batch-size",
                "32",
                "--threshold",
                "mean_std:3",
                "--out",
                str(tmp_path),
                "--quiet",
                "--no-plots",
            ]
        )
        == 0
    )
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["threshold"]["spec"] == "mean_std:3" and summary["metrics"]["auroc"] > 0.95
    assert not (tmp_path / "plots").exists()


def test_conv_vae_run_writes_the_latent_plot(tmp_path):
    argv = ["run", "--dataset", "digits", "--detector", "vae", "--arch", "conv", "--channels", "4,8"]
    assert main([*argv, "--epochs", "2", "--mc-samples", "3", "--out", str(tmp_path), "--quiet"]) == 0
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["config"]["model"]["arch"] == "conv" and summary["config"]["model"]["mc_samples"] == 3
    assert (tmp_path / "plots" / "latent.png").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--dataset", "nope"], "unknown data set 'nope'"),
        (["run", "--threshold", "median"], "unknown threshold"),
        (["run", "--normal", "42"], "not in the training labels"),
        (["run", "--epochs", "0"], "epochs must be >= 1"),
        (["run", "--dataset", "csv:/no/such.csv"], "data file not found"),
        (["run", "--detector", "ae", "--latent", "0"], "layer sizes"),
        (["run", "--devices", "0"], "devices must be >= 1"),
        (["run", "--devices", "4096"], "visible device"),
        (["run", "--detector", "ae", "--resume"], "no checkpoint at"),
        (["run", "--threshold", "fpr:1.5"], "fpr must be in (0, 1)"),
        (["run", "--kappa", "2"], "--kappa does not apply to detector 'tabular'"),
        (["run", "--detector", "vae", "--loss", "bce"], "--loss does not apply to detector 'vae'"),
        (
            ["run", "--detector", "fanogan", "--search-steps", "5"],
            "--search-steps does not apply to detector 'fanogan'",
        ),
        (["run", "--detector", "fanogan", "--loss", "paper"], "--loss does not apply to detector 'fanogan'"),
        (
            ["run", "--dataset", "synthetic", "--detector", "ae", "--arch", "conv"],
            "square grey or RGB images",
        ),
    ],
)
def test_bad_input_one_line_exit_2(tmp_path, capsys, argv, message):
    assert main([*argv, "--out", str(tmp_path / "x"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("jax-anomaly: error:") and len(err.splitlines()) == 1


@pytest.mark.parametrize("argv", [["--detector", "svm"], ["--precision", "fp8"], ["--devices", "two"]])
def test_bad_flag_exits_2(capsys, argv):
    with pytest.raises(SystemExit) as e:
        main(["run", *argv])
    assert e.value.code == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["--detector", "anogan", "--patience", "3"],
        ["--detector", "ae", "--val-fraction", "0", "--patience", "3"],
    ],
)
def test_patience_without_validation_loss_is_an_error(tmp_path, capsys, argv):
    assert main(["run", *argv, "--epochs", "2", "--out", str(tmp_path), "--quiet"]) == 2
    assert "early stopping (patience) needs a validation loss" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content, message",
    [
        (b"a,b,label\n1,nan,0\n2,3,1\n", "value 'nan' (NaN or inf) in column 'b' (line 2)"),
        (b"a,b,label\n1,x,0\n", "non-numeric value 'x' in column 'b'"),
        (b"a,b,cls\n1,2,0\n", "label column 'label' not in header"),
        (b"a,b,label\n\xff\xfe,1,0\n", "cannot read csv file"),
    ],
)
def test_bad_csv_one_line_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "d.csv"
    path.write_bytes(content)
    assert main(["run", "--dataset", f"csv:{path}", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_corrupt_idx_file_is_a_clear_error(tmp_path, capsys):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (folder / f"{name}.gz").write_bytes(b"\x1f\x8b truncated gzip")
    argv = ["run", "--dataset", "mnist", "--data-dir", str(tmp_path), "--out", str(tmp_path / "x"), "--quiet"]
    assert main(argv) == 2
    assert "cannot read IDX file" in capsys.readouterr().err


def test_no_anomalies_in_the_test_split_is_reported_not_a_crash(tmp_path, capsys):
    from jax_anomaly import DataConfig, RunConfig, TrainConfig, run

    cfg = RunConfig(
        data=DataConfig("synthetic", synthetic={"n_anomalies": 0}),
        train=TrainConfig(epochs=2, batch_size=64),
        out=str(tmp_path),
        progress=False,
    )
    summary = run(cfg)
    assert summary["metrics"]["auroc"] is None and "only normal samples" in summary["metrics"]["note"]
    assert (tmp_path / "metrics.json").is_file()


def test_streamed_data_without_a_run_folder_and_over_processes(monkeypatch):
    """A streamed run without ``--out`` keeps its data in a temporary folder (memory maps
    there); a share of several processes is refused before anything is read."""
    import numpy as np

    from jax_anomaly.config import DataConfig, TrainConfig
    from jax_anomaly.runner import RunConfig, prepare_data

    cfg = RunConfig(data=DataConfig("digits"), train=TrainConfig(stream_rows=64))
    data = prepare_data(cfg)
    assert isinstance(data.x_train, np.memmap) and "jax-anomaly-data-" in str(data.x_train.filename)
    np.testing.assert_array_equal(data.x_test, prepare_data(RunConfig(data=DataConfig("digits"))).x_test)
    with pytest.raises(ValueError, match="stream_rows trains in one process"):
        prepare_data(cfg, share=(0, 2))
