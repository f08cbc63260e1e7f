"""A detector registered from a module outside the package works from the CLI and as an
estimator, with no package file edited (experiments/custom_detector.py: Deep SVDD)."""

import json
from pathlib import Path

import pytest
from sklearn.metrics import roc_auc_score

import jax_anomaly as ja
from jax_anomaly.cli import main
from jax_anomaly.detectors import load_plugin

PLUGIN = str(Path(__file__).resolve().parents[1] / "experiments" / "custom_detector.py")


def test_plugin_detector_runs_from_the_cli_with_its_own_flags(tmp_path, capsys):
    argv = ["run", "--plugin", PLUGIN, "--detector", "deep_svdd", "--out-dim", "8", "--hidden", "32,16"]
    assert main([*argv, "--epochs", "20", "--batch-size", "32", "--out", str(tmp_path), "--quiet"]) == 0
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["detector"] == "deep_svdd" and summary["metrics"]["auroc"] > 0.9
    assert summary["config"]["model"]["out_dim"] == 8 and summary["config"]["model"]["hidden"] == [32, 16]
    loaded = ja.load(tmp_path / "model")
    assert type(loaded).__name__ == "DeepSVDD" and loaded.fitted_.config.out_dim == 8


def test_plugin_detector_is_an_estimator(digits):
    load_plugin(PLUGIN)
    generic = ja.AnomalyDetector("deep_svdd", epochs=20, batch_size=32, preset="tiny").fit(digits.x_train)
    assert roc_auc_score(digits.y_test, generic.decision_function(digits.x_test)) > 0.9
    own = ja.DeepSVDD(epochs=20, batch_size=32, preset="tiny").fit(
        digits.x_train
    )  # its class, from the registry
    assert own.get_params()["preset"] == "tiny" and "detector" not in own.get_params()
    assert (own.decision_function(digits.x_test) == generic.decision_function(digits.x_test)).all()


def test_a_flag_of_a_plugin_does_not_apply_to_other_detectors(tmp_path, capsys):
    assert main(["run", "--plugin", PLUGIN, "--out-dim", "8", "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--out-dim does not apply to detector 'tabular' (it applies to: deep_svdd)" in err


@pytest.mark.parametrize(
    "plugin, message", [("no_such_module_xyz", "cannot import plugin"), ("nope.py", "not found")]
)
def test_a_missing_plugin_is_one_line(plugin, message, capsys):
    assert main(["run", "--plugin", plugin]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("jax-anomaly: error:") and len(err.splitlines()) == 1
