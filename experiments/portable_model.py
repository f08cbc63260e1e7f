"""A model saved on one machine (e.g. a GPU) loads on another (e.g. a CPU) and scores the same.

    python experiments/portable_model.py save DIR    # fit AE and AnoGAN on digits, save models + scores
    python experiments/portable_model.py check DIR   # load them here, rescore, compare

Both runs use float32 matmuls (``precision='float32'``), so the comparison measures the
portability of the saved model, not TF32 rounding.
"""

import json
import sys
from pathlib import Path

import jax
import numpy as np

import jax_anomaly as ja
from jax_anomaly.config import DataConfig
from jax_anomaly.runner import RunConfig, prepare_data

MODELS = {
    "ae": lambda: ja.AutoEncoder(preset="digits", epochs=30, batch_size=32, precision="float32"),
    "anogan": lambda: ja.AnoGAN(preset="digits", epochs=10, batch_size=32, precision="float32"),
}


def main(argv):
    mode, folder = argv[0], Path(argv[1])
    data = prepare_data(RunConfig(data=DataConfig("digits")))
    report = {"device": str(jax.devices()[0])}
    for name, make in MODELS.items():
        if mode == "save":
            est = make().fit(data.x_train, validation_data=data.x_val)
            est.save(folder / name)
            np.save(folder / f"{name}_scores.npy", est.decision_function(data.x_test))
        else:
            est = ja.load(folder / name)
            est.set_params(precision="float32")
            saved = np.load(folder / f"{name}_scores.npy")
            scores = est.decision_function(data.x_test)
            rel = np.abs(scores - saved) / np.maximum(np.abs(saved), 1e-12)
            same = np.array_equal(scores > est.threshold_, saved > est.threshold_)
            report[name] = {
                "saved_on": est.manifest_["saved_with"]["devices"],
                "max_rel_diff": float(rel.max()),
                "identical_predictions": bool(same),
            }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
