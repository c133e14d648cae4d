"""Weight normalisation and data-dependent initialisation (Salimans & Kingma 2016) in the PixelCNN++ layers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gd_bottleneck import HybridVAE, weight_norm
from gd_bottleneck.weight_norm import WeightNormConv2D, WeightNormConv2DTranspose, WeightNormDense
from tests.tiny_models import TINY

WN_TINY = TINY.replace(weight_norm=True)


def normalised_kernel(direction, scale, output_axis):
    """g * v / ||v||, the norm over every axis but the output channels (numpy, float64)."""
    v = direction.astype(np.float64)
    axes = tuple(a for a in range(v.ndim) if a != output_axis % v.ndim)
    shape = [1] * v.ndim
    shape[output_axis] = -1
    return v * scale.reshape(shape) / np.sqrt(np.sum(v**2, axis=axes, keepdims=True))


@pytest.mark.parametrize("normalised, plain, shape, output_axis", [
    (lambda: WeightNormConv2D(5, (2, 3), strides=2), lambda: keras.layers.Conv2D(5, (2, 3), strides=2),
     (2, 6, 6, 4), -1),
    (lambda: WeightNormConv2DTranspose(5, (2, 2), strides=2),
     lambda: keras.layers.Conv2DTranspose(5, (2, 2), strides=2), (2, 3, 3, 4), 2),
    (lambda: WeightNormDense(5), lambda: keras.layers.Dense(5), (2, 3, 3, 4), -1)], ids=["conv", "transpose", "dense"])
def test_a_normalised_layer_computes_with_g_times_v_over_its_norm(normalised, plain, shape, output_axis):
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape).astype(np.float32)
    layer, reference = normalised(), plain()
    layer(x), reference(x)
    layer.scale.assign(rng.uniform(0.5, 2.0, layer.scale.shape).astype(np.float32))
    layer.bias.assign(rng.normal(size=layer.bias.shape).astype(np.float32))
    kernel = normalised_kernel(layer.kernel.numpy(), layer.scale.numpy(), output_axis)
    reference.kernel.assign(kernel.astype(np.float32))
    reference.bias.assign(layer.bias.numpy())
    np.testing.assert_allclose(layer(x).numpy(), reference(x).numpy(), rtol=1e-5, atol=1e-5)
    layer.kernel.assign(layer.kernel.numpy() * 3.0)  # only the direction of v matters
    np.testing.assert_allclose(layer(x).numpy(), reference(x).numpy(), rtol=1e-5, atol=1e-5)


def test_data_dependent_initialisation_standardises_every_normalised_layer(monkeypatch):
    """After the init pass, the same batch gives every layer outputs of mean 0 and std init_scale per channel."""
    model = HybridVAE(WN_TINY, bottleneck="gaussian_dropout", dropout_rate=0.1, seed=2)
    images = np.random.default_rng(1).integers(0, 256, [16, 8, 8, 3]).astype(np.uint8)
    before = model.elbo(images)["elbo_bpd"].numpy()
    model.initialize_from_data(images)
    outputs = {}
    call = weight_norm.WeightNormalized.call

    def recording(self, inputs, *args, **kwargs):
        result = call(self, inputs, *args, **kwargs)
        outputs[self.path] = (result.numpy(), self.init_scale)
        return result

    monkeypatch.setattr(weight_norm.WeightNormalized, "call", recording)
    after = model.elbo(images)["elbo_bpd"].numpy()
    assert len(outputs) == len([v for v in model.pixelcnn.weights if v.path.endswith("/scale")]) > 20
    for path, (values, init_scale) in outputs.items():
        axes = tuple(range(values.ndim - 1))
        np.testing.assert_allclose(values.mean(axis=axes), 0.0, atol=1e-4 * max(init_scale, 1.0), err_msg=path)
        np.testing.assert_allclose(values.std(axis=axes), init_scale, rtol=1e-3, err_msg=path)
    assert {scale for _, scale in outputs.values()} == {1.0, 0.1}  # the gates start at 0.1, as in PixelCNN++
    assert not np.array_equal(before, after) and np.all(np.isfinite(after))


def test_without_weight_norm_the_data_pass_changes_nothing():
    model = HybridVAE(TINY, seed=2)
    weights = model.get_weights()
    model.initialize_from_data(np.zeros([4, 8, 8, 3], np.uint8))
    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_initialisation_outside_the_context_leaves_the_weights_alone():
    layer = WeightNormDense(3)
    x = tf.random.stateless_normal([8, 4], (1, 2)) * 5.0 + 2.0
    layer(x)
    with weight_norm.data_dependent_initialization():
        layer(x)
    initialised = [w.numpy() for w in layer.weights]
    layer(x * 10.0)  # an ordinary call afterwards
    for a, b in zip(initialised, layer.weights):
        np.testing.assert_array_equal(a, b.numpy())
