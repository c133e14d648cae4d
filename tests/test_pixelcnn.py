"""PixelCNN++ building blocks and network: receptive fields, causality, structure, dropout."""

import numpy as np
import pytest
import tensorflow as tf

from gd_bottleneck.pixelcnn import PixelCNN, ShiftedConv2D, ShiftedConv2DTranspose, down_shift, right_shift
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


def make_network(stages=3, resnets=1, dropout=0.5, dtype=None, conditional=True):
    return PixelCNN(filters=8, resnets_per_stage=resnets, stages=stages, dropout=dropout, output_dim=10,
                               seed=4, dtype=dtype, conditional=conditional)


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
    network = PixelCNN(160, 5, 3, 0.5, 10, seed=0)
    assert len(network.up_u) + len(network.up_ul) + len(network.down_u) + len(network.down_ul) == 64


def test_dropout_is_active_only_in_training():
    network = make_network(dropout=0.5)
    inputs = [tf.random.uniform([2, 8, 8, 3], -1.0, 1.0, seed=8), tf.random.normal([2, 8, 8, 6], seed=9)]
    np.testing.assert_array_equal(network(inputs, training=False).numpy(), network(inputs, training=False).numpy())
    assert not np.allclose(network(inputs, training=True).numpy(), network(inputs, training=True).numpy())


# --- the unconditional PixelCNN++ (conditional=False) ---

def test_the_unconditional_network_is_causal_and_sees_its_neighbours():
    network = make_network(conditional=False)
    deps = pixel_dependencies(lambda x: network(x, training=False), tf.random.uniform([1, 8, 8, 3], -1.0, 1.0, seed=5))
    assert not np.any(deps & ~strictly_before(8, 8)), "a pixel's v depends on itself or on a later pixel"
    assert_sees_above_and_left_neighbours(deps)


def test_the_unconditional_network_is_the_conditional_one_with_zero_projections():
    """Same weights, the conditional network's condition projections set to zero: the same v, bit for bit (in
    training mode too, so the dropout layers draw the same masks)."""
    x = tf.random.uniform([2, 8, 8, 3], -1.0, 1.0, seed=10)
    condition = tf.random.normal([2, 8, 8, 6], seed=11)
    conditional, unconditional = make_network(), make_network(conditional=False)
    conditional([x, condition]), unconditional(x)
    blocks = conditional.up_u + conditional.up_ul + conditional.down_u + conditional.down_ul
    projections = {id(w) for block in blocks for w in block.condition_projection.weights}
    assert len(projections) == 2 * len(blocks)
    kept = [w for w in conditional.weights if id(w) not in projections]
    assert [w.path.split("/", 1)[1] for w in unconditional.weights] == [w.path.split("/", 1)[1] for w in kept]
    for target, source in zip(unconditional.weights, kept):
        target.assign(source)
    for block in blocks:
        for weight in block.condition_projection.weights:
            weight.assign(tf.zeros_like(weight))
    for training in (False, True):
        np.testing.assert_array_equal(unconditional(x, training=training).numpy(),
                                      conditional([x, condition], training=training).numpy())


def test_the_unconditional_network_round_trips_through_its_config():
    network = make_network(stages=2, conditional=False)
    network(tf.zeros([1, 8, 8, 3]))
    clone = PixelCNN.from_config(network.get_config())
    clone(tf.zeros([1, 8, 8, 3]))
    assert clone.conditional is False and clone.up_u[0].condition_projection is None
    clone.set_weights(network.get_weights())
    x = tf.random.uniform([1, 8, 8, 3], -1.0, 1.0, seed=12)
    np.testing.assert_array_equal(clone(x).numpy(), network(x).numpy())


def test_inputs_that_do_not_match_the_conditioning_are_refused_by_name():
    x, condition = tf.zeros([1, 8, 8, 3]), tf.zeros([1, 8, 8, 6])
    with pytest.raises(ValueError, match=r"`inputs` = \[x, u\]"):
        make_network()(x)
    with pytest.raises(ValueError, match="`inputs` = x alone"):
        make_network(conditional=False)([x, condition])
    with pytest.raises(ValueError, match="`conditional` must be True or False. Received: conditional='no'"):
        make_network(conditional="no")
    with pytest.raises(ValueError, match="`condition` must be None"):
        make_network(conditional=False).up_u[0].gate_bias(condition)
    from gd_bottleneck.pixelcnn_cache import IncrementalPixelCNN
    with pytest.raises(ValueError, match="`network` must be conditional"):
        IncrementalPixelCNN(make_network(conditional=False), condition)
