"""The benchmark's FLOP counts and its products-only epoch (no timing is asserted)."""

import re

import jax
import jax.numpy as jnp
import numpy as np

from jax_anomaly import bench
from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors import anogan
from jax_anomaly.detectors import autoencoder as ae


def _ae_matmuls(batch=8, n_features=20):
    cfg = ae.PRESETS["tiny"]
    state = ae.init_state(cfg, TrainConfig(), n_features, jax.random.key(0))
    x = jnp.zeros((batch, n_features))
    return bench.step_matmuls(ae.make_train_step(cfg), state, x, jnp.ones(batch), jax.random.key(0))


def test_step_matmuls_count_the_autoencoder_step_as_the_layer_formula():
    # tiny: 20-16-4-16-20; forward 4 products, backward 2 per layer except the first (no input grad).
    matmuls = _ae_matmuls(batch=8)
    assert len(matmuls) == 4 + 4 + 3
    assert bench.matmul_flops(matmuls) == 8 * bench.dense_train_flops([20, 16, 4, 16, 20])


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
    state = anogan.init_state(cfg, TrainConfig(), 20, jax.random.key(0))
    matmuls = bench.step_matmuls(
        anogan.make_train_step(cfg), state, jnp.zeros((4, 20)), jnp.ones(4), jax.random.key(0)
    )
    g = bench.dense_forward_flops([cfg.latent, *cfg.g_hidden, 20])
    d = bench.dense_forward_flops([20, *cfg.d_hidden, 1])
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
    first = sum(1e-4 * np.prod([a.shape[i] for i in p["dimension_numbers"][0][0]]) for a, _, p in matmuls)
    np.testing.assert_allclose(float(compiled(operands)), 3 * first, rtol=1e-5)
    assert bench.matmul_only_seconds(matmuls, steps=3, repeats=1) > 0
