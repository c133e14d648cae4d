"""PixelCNN++ building blocks and network: receptive fields, causality, structure, dropout."""

import numpy as np
import pytest
import tensorflow as tf

from gd_bottleneck.pixelcnn import (ConditionalPixelCNN, ShiftedConv2D, ShiftedConv2DTranspose, down_shift,
                                    right_shift)
from tests.dependencies import assert_sees_above_and_left_neighbours, pixel_dependencies, strictly_before


def test_shifts_move_by_one_and_fill_with_zeros():
    x = tf.reshape(tf.range(1.0, 10.0), [1, 3, 3, 1])
    np.testing.assert_array_equal(down_shift(x)[0, :, :, 0].numpy(), [[0, 0, 0], [1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(right_shift(x)[0, :, :, 0].numpy(), [[0, 1, 2], [0, 4, 5], [0, 7, 8]])


@pytest.mark.parametrize("shift, kernel, strides", [("down", (2, 3), 1), ("down_right", (2, 2), 1),
                                                     ("down", (2, 3), 2), ("down_right", (2, 2), 2)])
def test_shifted_convolution_equals_the_valid_convolution_of_the_padded_input_bit_for_bit(shift, kernel, strides):
    """The cached sampler pads its windows itself and calls ``layer.conv``: it must get the layer's numbers."""
    layer = ShiftedConv2D(16, kernel, shift, strides=strides)
    x = tf.random.normal([2, 8, 8, 12], seed=3)
    output = layer(x)
    np.testing.assert_array_equal(output.numpy(), layer.conv(tf.pad(x, layer.padding)).numpy())


@pytest.mark.parametrize("shift, kernel, rows, cols", [
    ("down", (2, 3), (-1, 0), (-1, 1)), ("down_right", (2, 2), (-1, 0), (-1, 0)), ("down", (1, 3), (0, 0), (-1, 1)),
    ("down_right", (2, 1), (-1, 0), (0, 0))])
def test_shifted_convolutions_see_exactly_their_window(shift, kernel, rows, cols):
    layer = ShiftedConv2D(4, kernel, shift)
    deps = pixel_dependencies(layer, tf.random.normal([1, 6, 6, 2], seed=1))
    i, j = 3, 3
    expected = np.zeros([6, 6], bool)
    expected[i + rows[0]:i + rows[1] + 1, j + cols[0]:j + cols[1] + 1] = True
    np.testing.assert_array_equal(deps[i, j], expected)


def test_strided_and_transposed_convolutions_halve_and_double():
    x = tf.random.normal([2, 8, 8, 3], seed=2)
    assert ShiftedConv2D(5, (2, 3), "down", strides=2)(x).shape == (2, 4, 4, 5)
    assert ShiftedConv2D(5, (2, 2), "down_right", strides=2)(x).shape == (2, 4, 4, 5)
    assert ShiftedConv2DTranspose(5, "down")(x).shape == (2, 16, 16, 5)
    assert ShiftedConv2DTranspose(5, "down_right")(x).shape == (2, 16, 16, 5)


def make_network(stages=3, resnets=1, dropout=0.5, dtype=None):
    return ConditionalPixelCNN(filters=8, resnets_per_stage=resnets, stages=stages, dropout=dropout, output_dim=10,
                               seed=4, dtype=dtype)


@pytest.mark.parametrize("stages, resnets, dtype", [(1, 2, None), (2, 1, None), (3, 1, None),
                                                    (3, 1, "mixed_bfloat16")])
def test_network_is_causal_and_sees_its_neighbours(stages, resnets, dtype):
    network, condition = make_network(stages, resnets, dtype=dtype), tf.random.normal([1, 8, 8, 6], seed=3)
    deps = pixel_dependencies(lambda x: network([x, tf.repeat(condition, x.shape[0], 0)], training=False),
                              tf.random.uniform([1, 8, 8, 3], -1.0, 1.0, seed=5))
    before = strictly_before(8, 8)
    assert not np.any(deps & ~before), "a pixel's v depends on itself or on a later pixel"
    assert_sees_above_and_left_neighbours(deps)


def test_v_depends_on_the_condition_everywhere():
    network = make_network()
    x = tf.random.uniform([1, 8, 8, 3], -1.0, 1.0, seed=6)
    deps = pixel_dependencies(lambda c: network([tf.repeat(x, c.shape[0], 0), c], training=False),
                              tf.random.normal([1, 8, 8, 6], seed=7))
    assert np.all(deps.any(axis=(2, 3)))


def test_paper_structure_has_64_gated_resnets():
    network = ConditionalPixelCNN(160, 5, 3, 0.5, 10, seed=0)
    assert len(network.up_u) + len(network.up_ul) + len(network.down_u) + len(network.down_ul) == 64


def test_dropout_is_active_only_in_training():
    network = make_network(dropout=0.5)
    inputs = [tf.random.uniform([2, 8, 8, 3], -1.0, 1.0, seed=8), tf.random.normal([2, 8, 8, 6], seed=9)]
    np.testing.assert_array_equal(network(inputs, training=False).numpy(), network(inputs, training=False).numpy())
    assert not np.allclose(network(inputs, training=True).numpy(), network(inputs, training=True).numpy())
