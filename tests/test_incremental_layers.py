"""gd_bottleneck.incremental_layers: a convolution or a gated resnet a row or a pixel at a time equals the whole map."""

import numpy as np
import pytest
import tensorflow as tf

from gd_bottleneck import incremental_layers as layers
from gd_bottleneck.pixelcnn import GatedResnet, ShiftedConv2D


def close(a, b, where):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=where)


@pytest.mark.parametrize("kernel", [(2, 2), (2, 1), (2, 3), (3, 3)])
def test_a_down_right_convolution_drawn_pixel_by_pixel_equals_the_whole_map(kernel):
    """The sampler's pixel cache (rows above, row in progress, its last kw - 1 values) at kernel sizes the network
    does not use too: every output from ``pixel_step`` in raster order, with ``next_row`` between rows."""
    layer = ShiftedConv2D(5, kernel, "down_right")
    x = tf.random.stateless_normal([2, 4, 6, 3], seed=[1, 2])
    whole = layer(x)
    cache = layers.initial_pixel_cache(layer, 2, 6, 3, tf.float32)
    for row in range(4):
        if row:
            cache = layers.next_row(cache)
        for col in range(6):
            output, cache = layers.pixel_step(layer, cache, col, x[:, row:row + 1, col:col + 1])
            close(output, whole[:, row:row + 1, col:col + 1], f"pixel ({row}, {col})")


@pytest.mark.parametrize("kernel", [(2, 3), (1, 3), (3, 3)])
def test_a_down_convolution_run_row_by_row_equals_the_whole_map(kernel):
    layer = ShiftedConv2D(5, kernel, "down")
    x = tf.random.stateless_normal([2, 4, 6, 3], seed=[3, 4])
    whole = layer(x)
    cache = layers.initial_row_cache(layer, 2, 6, 3, tf.float32)
    for row in range(4):
        output, cache = layers.row_step(layer, cache, x[:, row:row + 1])
        close(output, whole[:, row:row + 1], f"row {row}")


@pytest.mark.parametrize("shift", ["down", "down_right"])
def test_a_gated_resnet_stepped_through_the_image_equals_its_test_mode_call(shift):
    block = GatedResnet(4, shift, dropout=0.5, seed=1, has_skip=True)
    x = tf.random.stateless_normal([2, 3, 4, 4], seed=[5, 6])
    skip = tf.random.stateless_normal([2, 3, 4, 6], seed=[7, 8])
    condition = tf.random.stateless_normal([2, 3, 4, 5], seed=[9, 10])
    whole = block(x, skip=skip, condition=condition, training=False)
    gates = block.gate_bias(condition)
    cache = layers.block_initial_cache(block, 2, 4, tf.float32)
    weights = layers.block_window_weights(block, tf.float32)
    for row in range(3):
        if shift == "down":
            output, cache = layers.block_row_step(block, cache, x[:, row:row + 1], skip[:, row:row + 1],
                                                  gates[:, row:row + 1])
            close(output, whole[:, row:row + 1], f"row {row}")
            continue
        if row:
            cache = layers.block_next_row(cache)
        for col in range(4):
            at = (slice(None), slice(row, row + 1), slice(col, col + 1))
            output, cache = layers.block_pixel_step(block, cache, x[at], skip[at], gates[at], col, weights=weights)
            close(output, whole[at], f"pixel ({row}, {col})")
