"""Which input pixels each output pixel depends on, from an exact Jacobian (for causality tests)."""

import numpy as np
import tensorflow as tf


def pixel_dependencies(fn, inputs, seed=0):
    """``D[i, j, k, l] = True`` iff output pixel (i, j) has a non-zero gradient w.r.t. input pixel (k, l).

    ``fn`` maps ``inputs [N, H, W, C]`` to ``[N, H, W, P]`` with no interaction between examples. One backward pass
    on H*W copies of the single input ``[1, H, W, C]`` gives the whole Jacobian pattern: copy b back-propagates only
    from output pixel b. The P outputs are mixed with fixed random weights (so cancellations cannot hide a
    dependency); input channels are reduced with ``any``. Other inputs of ``fn`` must be tiled to the batch.
    """
    height, width = inputs.shape[1:3]
    copies = tf.repeat(tf.convert_to_tensor(inputs), height * width, axis=0)
    with tf.GradientTape() as tape:
        tape.watch(copies)
        outputs = fn(copies)
        weights = tf.random.stateless_normal(outputs.shape[-1:], seed=(seed, 1), dtype=outputs.dtype)
        mixed = tf.reduce_sum(outputs * weights, axis=-1)  # [HW, H, W]
        selected = tf.reshape(tf.eye(height * width, dtype=mixed.dtype), [-1, height, width])
        total = tf.reduce_sum(mixed * selected)
    gradient = tape.gradient(total, copies).numpy()  # [HW, H, W, C]
    return np.any(gradient != 0, axis=-1).reshape(height, width, height, width)


def strictly_before(height, width):
    """``M[i, j, k, l] = True`` iff pixel (k, l) comes strictly before (i, j) in raster order."""
    order = np.arange(height * width).reshape(height, width)
    return order[None, None, :, :] < order[:, :, None, None]


def assert_sees_above_and_left_neighbours(deps):
    height, width = deps.shape[:2]
    for i in range(height):
        for j in range(width):
            assert i == 0 or deps[i, j, i - 1, j], f"pixel ({i}, {j}) does not see the pixel above it"
            assert j == 0 or deps[i, j, i, j - 1], f"pixel ({i}, {j}) does not see the pixel left of it"
