import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from jax_anomaly.config import TrainConfig
from jax_anomaly.detectors import autoencoder as ae
from jax_anomaly.models import ConvDiscriminator, EncoderDecoder, encoder_decoder, image_shape_for


@pytest.mark.parametrize("n, levels", [(20, 1), (784, 3), (63, 1)])
def test_image_shape_rejects_what_the_conv_stack_cannot_halve(n, levels):
    with pytest.raises(ValueError, match="square grey or RGB images"):
        image_shape_for(n, levels)


def test_image_shapes():
    assert image_shape_for(784, 2) == (28, 28, 1) and image_shape_for(64, 3) == (8, 8, 1)
    assert image_shape_for(3 * 64, 3) == (8, 8, 3)  # RGB rows


@pytest.mark.parametrize("d", [64, 3 * 64])  # grey, RGB
def test_conv_autoencoder_per_sample_equals_batched(d):
    enc, dec = encoder_decoder("conv", d, encoder_out=3, channels=(4, 8))
    model = EncoderDecoder(enc, dec)
    x = jax.random.uniform(jax.random.key(0), (5, d))
    params = model.init(jax.random.key(1), x[:1])["params"]
    batched = model.apply({"params": params}, x)
    one_by_one = jax.vmap(lambda xi: model.apply({"params": params}, xi))(x)
    assert batched.shape == (5, d) and np.all((batched > 0) & (batched < 1))
    np.testing.assert_allclose(one_by_one, batched, rtol=1e-5, atol=1e-6)


def test_dcgan_discriminator_features():
    d = ConvDiscriminator((8, 8, 1), (4, 8))
    x = jnp.zeros((3, 64))
    params = d.init(jax.random.key(0), x)["params"]
    logits, features = d.apply({"params": params}, x, return_features=True)
    assert logits.shape == (3,) and features.shape == (3, 2 * 2 * 8)


def test_conv_autoencoder_separates_digits(digits):
    cfg = ae.AEConfig(arch="conv", channels=(8, 16), latent=8)
    fitted = ae.DETECTOR.fit(
        cfg, TrainConfig(epochs=15, batch_size=32), digits.x_train, key=jax.random.key(0), progress=False
    )
    assert "conv_0" in fitted.params["encoder"]
    assert roc_auc_score(digits.y_test, ae.DETECTOR.score(fitted, digits.x_test)["score"]) > 0.9


def test_bad_arch_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown arch 'resnet'"):
        ae.AEConfig(arch="resnet")
    with pytest.raises(ValueError, match="channels >= 1"):
        ae.AEConfig(arch="conv", channels=())


def test_hidden_activation_defaults_to_leaky_relu_for_conv_only():
    # a ReLU conv autoencoder got stuck at the mean image on MNIST class 5 (see factory.py)
    enc, dec = encoder_decoder("conv", 64, encoder_out=4, channels=(4,))
    assert enc.activation == dec.activation == "leaky_relu"
    enc, dec = encoder_decoder("dense", 64, encoder_out=4, hidden=(8,))
    assert enc.activation == "relu"
    enc, _ = encoder_decoder("conv", 64, encoder_out=4, channels=(4,), activation="tanh")
    assert enc.activation == "tanh"  # an explicit choice wins
    with pytest.raises(ValueError, match="unknown activation 'swishy'"):
        ae.AEConfig(arch="conv", activation="swishy")


@pytest.mark.parametrize("strides, kernel", [(2, (4, 4)), (1, (3, 3)), (2, (3, 4))])
def test_unfolded_convolutions_equal_flax_convolutions(strides, kernel):
    """The conv modules' matrix-product convolutions hold nn.Conv's / nn.ConvTranspose's
    parameters (same shapes, same initial values) and give their outputs and gradients."""
    import flax.linen as nn

    from jax_anomaly.models.conv import UnfoldConv2D, UnfoldConvTranspose2D

    x = jax.random.normal(jax.random.key(0), (3, 12, 8, 5))
    pairs = (
        (UnfoldConv2D(6, kernel, strides), nn.Conv(6, kernel, strides=strides, padding="SAME")),
        (
            UnfoldConvTranspose2D(6, kernel, strides),
            nn.ConvTranspose(6, kernel, strides=(strides,) * 2, padding="SAME"),
        ),
    )
    for ours, flax_conv in pairs:
        params = ours.init(jax.random.key(1), x)
        reference = flax_conv.init(jax.random.key(1), x)
        jax.tree.map(np.testing.assert_array_equal, params, reference)
        np.testing.assert_allclose(ours.apply(params, x), flax_conv.apply(params, x), rtol=1e-5, atol=1e-5)

        def loss(module, params=params):
            return jax.grad(lambda p: jnp.sum(jnp.sin(module.apply(p, x))))(params)

        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), loss(ours), loss(flax_conv)
        )
