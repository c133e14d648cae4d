"""Checks every public layer must pass (Sonnet-style conformance): config and `.keras` round trips, checkpointed
noise streams, and N replicas == 1 replica. A new layer joins by adding one line to LAYERS."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gd_bottleneck import GaussianDropoutBottleneck, VariationalBottleneck
from tests.replicas import run_on_replicas

INPUT_SHAPE = (4, 3, 3, 5)  # [B, H, W, D], B divisible by 2 replicas
LAYERS = {
    "gaussian_dropout": lambda: GaussianDropoutBottleneck(0.3, seed=17),
    "variational": lambda: VariationalBottleneck(6, beta=0.25, seed=17),
}


def built(make_layer):
    layer = make_layer()
    layer.build(INPUT_SHAPE)
    return layer


@pytest.fixture
def inputs():
    return tf.constant(np.random.default_rng(1).normal(size=INPUT_SHAPE), tf.float32)


@pytest.mark.parametrize("name", LAYERS)
def test_get_config_round_trip_reproduces_outputs(name, inputs):
    layer = built(LAYERS[name])
    clone = type(layer).from_config(layer.get_config())
    clone.build(INPUT_SHAPE)
    clone.set_weights(layer.get_weights())
    assert clone.get_config() == layer.get_config()
    for training in (True, True, False):
        np.testing.assert_array_equal(clone(inputs, training=training).numpy(),
                                      layer(inputs, training=training).numpy())


def test_seed_none_is_recorded_so_configs_reproduce_the_noise(inputs):
    layer = GaussianDropoutBottleneck(0.3)
    assert isinstance(layer.get_config()["seed"], int)
    clone = GaussianDropoutBottleneck.from_config(layer.get_config())
    np.testing.assert_array_equal(clone(inputs, training=True).numpy(), layer(inputs, training=True).numpy())


@pytest.mark.parametrize("name", LAYERS)
def test_keras_file_round_trip_gives_identical_outputs_and_continues_the_noise_stream(name, inputs, tmp_path):
    model = keras.Sequential([keras.Input(INPUT_SHAPE[1:]), LAYERS[name]()])
    model(inputs, training=True)  # advance the noise stream once before saving
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    for training in (False, True, True):
        np.testing.assert_array_equal(loaded(inputs, training=training).numpy(),
                                      model(inputs, training=training).numpy())
    if name == "variational":
        np.testing.assert_allclose(float(tf.add_n(loaded.losses)), float(tf.add_n(model.losses)), rtol=1e-6)


@pytest.mark.parametrize("name", LAYERS)
def test_checkpoint_restores_the_noise_stream(name, inputs, tmp_path):
    layer = built(LAYERS[name])
    layer(inputs, training=True)
    path = tf.train.Checkpoint(layer=layer).write(str(tmp_path / "ckpt"))
    expected_next = layer(inputs, training=True).numpy()

    resumed = built(LAYERS[name])
    tf.train.Checkpoint(layer=resumed).read(path).assert_existing_objects_matched()
    assert int(resumed.noise_calls.numpy()) == 1
    np.testing.assert_array_equal(resumed(inputs, training=True).numpy(), expected_next)


@pytest.mark.parametrize("name", LAYERS)
def test_weights_file_carries_the_noise_stream(name, inputs, tmp_path):
    model = keras.Sequential([keras.Input(INPUT_SHAPE[1:]), LAYERS[name]()])
    model(inputs, training=True)
    model(inputs, training=True)
    model.save_weights(tmp_path / "w.weights.h5")
    twin = keras.Sequential([keras.Input(INPUT_SHAPE[1:]), LAYERS[name]()])
    twin.load_weights(tmp_path / "w.weights.h5")
    np.testing.assert_array_equal(twin(inputs, training=True).numpy(), model(inputs, training=True).numpy())


@pytest.mark.parametrize("name", LAYERS)
def test_two_replicas_equal_one_replica_and_draw_different_noise(name, inputs, two_replicas):
    weights = built(LAYERS[name]).get_weights()
    one_replica = tf.distribute.OneDeviceStrategy("/cpu:0")
    one, one_losses, _ = run_on_replicas(LAYERS[name], weights, inputs, one_replica, calls=2)
    two, two_losses, layer = run_on_replicas(LAYERS[name], weights, inputs, two_replicas, calls=2)
    for a, b in zip(one, two):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(two_losses, one_losses, rtol=1e-5)
    assert not np.allclose(one[0], one[1])  # fresh noise per call
    # The two replicas' halves got different noise: identical inputs on both halves give different outputs.
    same_halves = tf.concat([inputs[:2], inputs[:2]], axis=0)
    (out,), _, _ = run_on_replicas(LAYERS[name], weights, same_halves, two_replicas)
    assert not np.allclose(out[:2], out[2:])
    assert int(layer.noise_calls.numpy()) == 2  # the counter advances once per step, not once per replica
