"""The benchmarks' FLOP counts, products-only epoch and JSON schema (no timing is asserted)."""

import re

import jax
import jax.numpy as jnp
import numpy as np

from jax_anomaly.benchmarks import measure as bench
from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors import anogan, gan
from jax_anomaly.detectors import autoencoder as ae


def dense_forward_flops(layers) -> int:
    """FLOPs of one sample's forward pass through dense layers (2 per multiply-add)."""
    return int(sum(2 * a * b for a, b in zip(layers[:-1], layers[1:], strict=True)))


def dense_train_flops(layers) -> int:
    """Forward + backward FLOPs of one training sample: the backward pass costs two products
    per layer except the first, whose input needs no gradient."""
    fwd = dense_forward_flops(layers)
    return int(3 * fwd - 2 * layers[0] * layers[1])


def _ae_matmuls(batch=8, n_features=20):
    cfg = ae.PRESETS["tiny"]
    state = ae.init_state(cfg, TrainConfig(), n_features, jax.random.key(0))
    x = jnp.zeros((batch, n_features))
    return bench.step_matmuls(
        ae.make_step(cfg, TrainConfig(), n_features), state, x, jnp.ones(batch), jax.random.key(0)
    )


def test_step_matmuls_count_the_autoencoder_step_as_the_layer_formula():
    # tiny: 20-16-4-16-20; forward 4 products, backward 2 per layer except the first (no input grad).
    matmuls = _ae_matmuls(batch=8)
    assert len(matmuls) == 4 + 4 + 3
    assert bench.matmul_flops(matmuls) == 8 * dense_train_flops([20, 16, 4, 16, 20])


def test_matmul_flops_of_batched_and_nested_products():
    a, b = jnp.ones((3, 5, 7)), jnp.ones((3, 7, 2))

    def fn(a, b):
        inner = jax.jit(lambda a, b: jnp.einsum("bij,bjk->bik", a, b))
        return inner(a, b).sum() + (a[0] @ b[0]).sum()

    matmuls = bench.step_matmuls(fn, a, b)
    assert len(matmuls) == 2
    assert bench.matmul_flops(matmuls) == 2 * 3 * 5 * 7 * 2 + 2 * 5 * 7 * 2


def test_gan_step_flops_cover_its_three_network_passes():
    cfg = anogan.PRESETS["tiny"]
    state = gan.init_state(cfg, TrainConfig(), 20, jax.random.key(0))
    matmuls = bench.step_matmuls(
        gan.make_step(cfg, TrainConfig(), 20), state, jnp.zeros((4, 20)), jnp.ones(4), jax.random.key(0)
    )
    g = dense_forward_flops([cfg.latent, *cfg.g_hidden, 20])
    d = dense_forward_flops([20, *cfg.d_hidden, 1])
    # at least: G forward, D forward on real and fake, D forward again for the G update
    assert bench.matmul_flops(matmuls) > 4 * (g + 3 * d)


def _while_body_products(hlo: str) -> int:
    """Products inside the while loop's body: dots, or fusions whose computation has one."""
    comps = {m.group(1): m.group(2) for m in re.finditer(r"\n%(\S+) [^\n]*\{\n(.*?)\n\}", hlo, re.S)}
    body = comps[re.search(r"while\([^\n]*body=%([^,\s]+)", hlo).group(1)]
    count = len(re.findall(r" dot\(", body))
    for callee in re.findall(r" fusion\([^\n]*calls=%([^,\s]+)", body):
        count += " dot(" in comps.get(callee, "")
    return count


def test_products_only_epoch_keeps_every_product_inside_the_loop():
    matmuls = _ae_matmuls()
    epoch, operands = bench.matmul_only_epoch(matmuls, steps=3)
    compiled = epoch.lower(operands).compile()
    assert _while_body_products(compiled.as_text()) == len(matmuls)
    # each iteration adds the first element of every product: 0.01 * 0.01 * contracted size
    first = sum(1e-4 * np.prod([a.shape[i] for i in p["dimension_numbers"][0][0]]) for a, _, p, _ in matmuls)
    np.testing.assert_allclose(float(compiled(operands)), 3 * first, rtol=1e-5)
    assert bench.matmul_only_seconds(matmuls, steps=3, repeats=1) > 0


def test_products_inside_a_scan_count_once_per_iteration():
    def fn(a, b):
        return jax.lax.scan(lambda c, _: (c @ b, None), a, None, length=5)[0]

    matmuls = bench.step_matmuls(fn, jnp.ones((3, 4)), jnp.ones((4, 4)))
    assert bench.matmul_flops(matmuls) == 5 * 2 * 3 * 4 * 4


def test_search_flops_per_sample_scale_with_its_steps():
    """The AnoGAN score's FLOPs, counted from its jaxpr, grow by one forward+backward per step."""
    from jax_anomaly.benchmarks.score import score_flops
    from jax_anomaly.detectors import Fitted, get_detector

    det = get_detector("anogan")
    x = np.zeros((2, 20), np.float32)
    flops = []
    for steps in (10, 20):
        cfg = anogan.AnoGANConfig(latent=4, g_hidden=(16,), d_hidden=(16,), search_steps=steps)
        params = gan.gan_params(gan.init_state(cfg, TrainConfig(), 20, jax.random.key(0)))
        flops.append(score_flops(det, Fitted("anogan", cfg, params, None, 20), x, jax.random.key(1)))
    per_step = (flops[1] - flops[0]) / 10
    forward = dense_forward_flops([4, 16, 20]) + dense_forward_flops([20, 16, 1])
    assert 2 * forward <= per_step <= 3 * forward


def test_report_schema_rows_have_the_same_keys(tmp_path):
    import json

    from jax_anomaly.benchmarks import report

    rep = report.new_report("unit", {"n": 1})
    rep["measurements"] += [
        report.measurement("a", samples=10, seconds=2.0, flops_per_sample=1e6, compile_seconds=0.1),
        report.measurement("b", samples=10, seconds=1.0, flops_per_sample=None, compile_seconds=None),
    ]
    out = tmp_path / "r.json"
    report.finish(rep, str(out))
    saved = json.loads(out.read_text())
    assert saved["schema"] == report.SCHEMA and saved["peak"]["best"] >= saved["peak"]["before"] > 0
    a, b = saved["measurements"]
    assert a.keys() == b.keys() and a["samples_per_second"] == 5.0
    assert a["fraction_of_peak"] == a["gflops"] / saved["peak"]["best"] and b["fraction_of_peak"] is None


def test_bench_train_and_score_any_detector_from_the_cli(tmp_path):
    """``bench train`` / ``bench score`` on a registered detector (VAE, tiny, digits) write
    the one schema, with FLOPs counted from the step and the per-sample scorer."""
    import json

    from jax_anomaly.cli import main

    common = ["--detector", "vae", "--dataset", "digits", "--preset", "tiny", "--batch-size", "32"]
    assert main(["bench", "train", *common, "--epochs", "3", "--out", str(tmp_path / "t.json")]) == 0
    assert main(["bench", "score", *common, "--sizes", "100", "--out", str(tmp_path / "s.json")]) == 0
    train, score = (json.loads((tmp_path / f).read_text()) for f in ("t.json", "s.json"))
    assert train["schema"] == score["schema"] and train["settings"]["detector"] == "vae"
    (row,) = train["measurements"]
    assert row["flops_per_sample"] > 0 and row["details"]["step_matmuls"] > 0 and row["fraction_of_peak"] > 0
    (row,) = score["measurements"]
    assert row["samples"] == 100 and row["flops_per_sample"] > 0 and row["compile_seconds"] >= 0
