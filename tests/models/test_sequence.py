"""The unfolded-window 1-D convolution equals XLA's (``nn.Conv``, padding SAME) with the same
parameters, forward and backward, for the strides and lengths the sequence models use."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_anomaly.models.sequence import Conv1DDecoder, Conv1DEncoder, UnfoldConv1D


@pytest.mark.parametrize(
    "length, c_in, c_out, kernel, stride", [(17, 1, 4, 5, 2), (16, 3, 2, 5, 1), (9, 2, 3, 3, 2)]
)
def test_unfold_conv1d_equals_xla_convolution(length, c_in, c_out, kernel, stride):
    x = jax.random.normal(jax.random.key(0), (4, length, c_in))
    unfold = UnfoldConv1D(c_out, kernel, stride)
    xla = nn.Conv(c_out, (kernel,), strides=stride, padding="SAME")
    params = unfold.init(jax.random.key(1), x)
    # same parameter names, shapes and initial values as nn.Conv under the same key
    ref_params = xla.init(jax.random.key(1), x)
    jax.tree.map(np.testing.assert_array_equal, params, ref_params)
    np.testing.assert_allclose(unfold.apply(params, x), xla.apply(params, x), rtol=1e-5, atol=1e-5)

    def loss(mod):
        return lambda p, x: jnp.sum(jnp.sin(mod.apply(p, x)))

    g = jax.grad(loss(unfold), argnums=(0, 1))(params, x)
    g_ref = jax.grad(loss(xla), argnums=(0, 1))(params, x)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), g, g_ref)


def test_sequence_models_keep_their_shapes():
    x = jnp.ones((2, 3, 30))  # lead dims (2, 3), window 15 of 2 channels
    enc = Conv1DEncoder(15, 2, (4, 8), 5)
    z = enc.apply(enc.init(jax.random.key(0), x), x)
    dec = Conv1DDecoder(15, 2, (8, 4))
    out = dec.apply(dec.init(jax.random.key(1), z), z)
    assert z.shape == (2, 3, 5) and out.shape == (2, 3, 30)
