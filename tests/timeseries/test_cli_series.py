"""The CLI on a time series: flags -> run_series -> run folder with scores, events, plot, report."""

import csv
import json

from jax_anomaly.cli import main


def test_cli_series_run(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "run",
        "--dataset",
        "ts_synthetic_point",
        "--detector",
        "conv1d_ae",
        "--preset",
        "tiny",
        "--window",
        "auto",
        "--epochs",
        "2",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(argv) == 0
    for f in ["metrics.json", "config.json", "scores.csv", "events.csv", "plots/series.png", "report.html"]:
        assert (out / f).is_file(), f
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["window"]["length"] == 50  # the generator's period
    assert {"vus_pr", "vus_roc", "auc_pr", "auc_roc", "range_f1"} <= set(summary["metrics"])
    with open(out / "events.csv", newline="") as f:
        kinds = [r["kind"] for r in csv.DictReader(f)]
    assert kinds.count("labelled") == 6
    assert "VUS-PR" in capsys.readouterr().out


def test_cli_series_baseline_and_errors(tmp_path):
    assert (
        main(
            [
                "run",
                "--dataset",
                "ts_synthetic_collective",
                "--detector",
                "kmeans",
                "--window",
                "50",
                "--out",
                str(tmp_path / "k"),
                "--quiet",
                "--no-plots",
            ]
        )
        == 0
    )
    summary = json.loads((tmp_path / "k" / "metrics.json").read_text())
    assert summary["metrics"]["auc_roc"] > 0.9
    assert main(["run", "--dataset", "digits", "--detector", "kmeans", "--quiet"]) == 2  # a series baseline
    assert main(["run", "--dataset", "ts_synthetic", "--window", "often", "--quiet"]) == 2


def test_cli_series_run_without_a_detector_runs_discords(tmp_path):
    out = tmp_path / "d"
    argv = ["run", "--dataset", "ts_synthetic_collective", "--out", str(out), "--quiet", "--no-plots"]
    assert main(argv) == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["detector"] == "discords" and summary["metrics"]["auc_roc"] > 0.9
