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
    assert rows[0] == "index,label,class,score,predicted" and len(rows) == summary["data"]["n_test"] + 1
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


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--dataset", "nope"], "unknown data set 'nope'"),
        (["run", "--threshold", "median"], "unknown threshold"),
        (["run", "--normal", "42"], "not in the training labels"),
        (["run", "--epochs", "0"], "epochs must be >= 1"),
        (["run", "--dataset", "csv:/no/such.csv"], "data file not found"),
        (["run", "--latent", "0"], "layer sizes"),
        (["run", "--devices", "0"], "devices must be >= 1"),
        (["run", "--devices", "4096"], "visible device"),
    ],
)
def test_bad_input_one_line_exit_2(tmp_path, capsys, argv, message):
    assert main([*argv, "--out", str(tmp_path / "x"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("jax-anomaly: error:") and len(err.splitlines()) == 1


def test_bad_flag_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "--detector", "svm"])
    assert e.value.code == 2


@pytest.mark.parametrize(
    "argv",
    [["--detector", "anogan", "--patience", "3"], ["--val-fraction", "0", "--patience", "3"]],
)
def test_patience_without_validation_loss_is_an_error(tmp_path, capsys, argv):
    assert main(["run", *argv, "--epochs", "2", "--out", str(tmp_path), "--quiet"]) == 2
    assert "early stopping (patience) needs a validation loss" in capsys.readouterr().err
