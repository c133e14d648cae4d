"""Incremental evaluation of single PixelCNN++ layers: a convolution or a gated resnet one row or one pixel at a time.

A generator that fills an image in raster order keeps, per convolution, the part of its (padded) input that later
outputs still need, and evaluates the convolution only where a new output became computable. These functions do
that for the layers of gd_bottleneck/pixelcnn.py (test mode), reading them through a small interface:

* :class:`~gd_bottleneck.pixelcnn.ShiftedConv2D`: ``kernel_size``, ``padding``, ``filters``, ``conv`` (the Keras
  convolution, for windows wider than one receptive field) and ``effective_weights(dtype)``;
* :class:`~gd_bottleneck.pixelcnn.GatedResnet`: ``shift``, ``filters``, ``conv_in``, ``conv_out`` and
  ``gated(x, conv_in, skip, conv_out, gate_bias)``, the block's maths with its convolutions given as functions.

A ``"down"`` convolution (sees rows above) runs a row at a time with a *row cache*: the ``kh - 1`` padded input rows
above. A ``"down_right"`` convolution (sees rows above and pixels to the left) runs a pixel at a time with a *pixel
cache* ``(above, row, left)``. gd_bottleneck/pixelcnn_cache.py schedules them over the whole network.
"""

import tensorflow as tf


def window_columns(tensor, start, width):
    """``tensor[:, :, start:start + width]`` with a tensor ``start`` and a static ``width`` (the result keeps a
    static shape, which TensorFlow's graph optimizations and XLA need in the sampler's loop)."""
    begin = tf.stack([0, 0, start, 0])
    return tf.slice(tensor, begin, [-1, tensor.shape[1], width, tensor.shape[3]])


# ---------------------------------------------------------------------- one convolution (ShiftedConv2D)

def window_weights(conv, dtype):
    """``(kernel [kh * kw * C, F], bias [F])``: ``conv``'s weights in the matrix form of :func:`on_window`. The
    cached sampler computes them once, before its pixel loop: ops written in a loop's body run at every step, and
    these (a reshape, and the kernel's normalisation with weight norm) do not change from pixel to pixel."""
    kernel, bias = conv.effective_weights(dtype)
    return tf.reshape(kernel, [-1, conv.filters]), bias


def on_window(conv, window, weights=None):
    """The outputs of ``conv`` whose receptive fields make up ``window``, an input slice *with the padding in place*
    (e.g. ``[B, kh, kw, C]`` -> one output ``[B, 1, 1, F]``).

    A window of exactly one receptive field is one matrix product, ``[B, kh * kw * C] @ [kh * kw * C, F]``: the
    same sum of products as the convolution, and much cheaper to dispatch than a convolution op on a single
    position (docs/design.md, "Measurements behind the code"). ``weights``: :func:`window_weights`, if the caller
    computed them once for many windows.
    """
    kh, kw = conv.kernel_size
    if window.shape[1] != kh or window.shape[2] != kw:
        return conv.conv(window)
    kernel, bias = window_weights(conv, window.dtype) if weights is None else weights
    flat = tf.reshape(window, [-1, kh * kw * window.shape[3]])
    output = tf.matmul(flat, kernel) + bias
    return tf.reshape(output, [-1, 1, 1, conv.filters])


def initial_row_cache(conv, batch, width, channels, dtype):
    """Zeros ``[B, kh - 1, width + horizontal padding, C]``: the rows above the image (its top padding)."""
    kh, (left, right) = conv.kernel_size[0], conv.padding[2]
    return tf.zeros([batch, kh - 1, width + left + right, channels], dtype)


def row_window(conv, cache, row):
    """``(window, new cache)`` for the next input row ``[B, 1, W, C]`` of a ``"down"`` convolution: the window is
    what :func:`on_window` turns into the output row (every stride-th column for strided ones); the cache holds the
    ``kh - 1`` padded input rows above the next row."""
    left, right = conv.padding[2]
    padded = tf.pad(row, [[0, 0], [0, 0], [left, right], [0, 0]])
    window = tf.concat([cache, padded], axis=1)
    return window, window[:, 1:]


def row_step(conv, cache, row):
    """``(output row [B, 1, W, F], new cache)`` of a stride-1 ``"down"`` convolution (see :func:`row_window`)."""
    window, cache = row_window(conv, cache, row)
    return on_window(conv, window), cache


def initial_pixel_cache(conv, batch, width, channels, dtype):
    """A ``"down_right"`` convolution's padded input at the top left of the image, ``(above, row, left)``:

    * ``above [B, kh - 1, width + kw - 1, C]``: the rows above the row in progress (read, never written, while a
      row is drawn);
    * ``row [B, 1, width + kw - 1, C]``: the row in progress (written, never read, while it is drawn; it becomes the
      last row of ``above`` at :func:`next_row`);
    * ``left [B, 1, kw - 1, C]``: its last ``kw - 1`` values (the next window's bottom left).

    Why three tensors and not one: TensorFlow writes into a tensor in place only when nothing else reads it. A
    single cache that is both written and read at every pixel is copied whole at every write
    (docs/benchmarks.md)."""
    kh, kw = conv.kernel_size
    padded = width + kw - 1
    return (tf.zeros([batch, kh - 1, padded, channels], dtype), tf.zeros([batch, 1, padded, channels], dtype),
            tf.zeros([batch, 1, kw - 1, channels], dtype))


def pixel_window(conv, cache, column, value, image_indices=None):
    """Writes input ``value [B, 1, 1, C]`` at ``column`` of the row in progress of a ``"down_right"`` convolution's
    cache (:func:`initial_pixel_cache`); returns ``(the window of the output at that column [B, kh, kw, C], new
    cache)``. Called at every column of a row, left to right.

    The window is the rows above at columns ``column .. column + kw - 1`` (padded coordinates), then ``left`` and
    ``value``: one concatenation of ``[B, 1, (kh - 1) * kw + kw - 1 + 1, C]``, reshaped (row-major, so the values
    are in the order of the window). ``image_indices``: ``tf.range(B)``, computed once by the caller, so that every
    write of a pixel step builds its position from the same tensors and TensorFlow's graph optimizer computes it
    once for all of them (ops per pixel are what a sampler's step pays for)."""
    kh, kw = conv.kernel_size
    above, row, left = cache
    if image_indices is None:
        image_indices = tf.range(tf.shape(row)[0])
    channels = value.shape[-1]
    above_window = tf.reshape(window_columns(above, column, kw), [-1, 1, (kh - 1) * kw, channels])
    bottom = tf.concat([above_window, left, value], axis=2)  # [B, 1, kh * kw, C]
    window = tf.reshape(bottom, [-1, kh, kw, channels])
    where = tf.stack([image_indices, tf.zeros_like(image_indices),
                      tf.fill(tf.shape(image_indices), column + kw - 1)], axis=1)
    row = tf.tensor_scatter_nd_update(row, where, value[:, 0, 0])
    left = value if kw == 2 else bottom[:, :, kh * kw - (kw - 1):]
    return window, (above, row, left)


def pixel_step(conv, cache, column, value, image_indices=None, weights=None):
    """``(output at column [B, 1, 1, F], new cache)`` of a stride-1 ``"down_right"`` convolution: everything it
    sees (the rows above, the pixels to the left and this one) is known (see :func:`pixel_window`; ``weights``:
    see :func:`on_window`)."""
    window, cache = pixel_window(conv, cache, column, value, image_indices)
    return on_window(conv, window, weights), cache


def next_row(cache):
    """A pixel cache at the start of a new row: the finished row joins the rows above (the oldest leaves), the new
    row in progress and its left values are zeros (the left padding)."""
    above, row, left = cache
    above = row if above.shape[1] == 1 else tf.concat([above[:, 1:], row], axis=1)
    return above, tf.zeros_like(row), tf.zeros_like(left)


# ---------------------------------------------------------------------- one gated resnet (GatedResnet)

def block_initial_cache(block, batch, width, dtype):
    """The two convolutions' caches at the top of the image (row caches for "down", pixel caches otherwise)."""
    initial = initial_row_cache if block.shift == "down" else initial_pixel_cache
    return tuple(initial(conv, batch, width, 2 * block.filters, dtype) for conv in (block.conv_in, block.conv_out))


def block_row_step(block, cache, x, skip, gate_bias):
    """A ``"down"`` block on one row ``x [B, 1, W, F]`` (``gate_bias`` that row's): ``(y, new cache)``."""
    return _incremental(block, cache, x, skip, gate_bias,
                        lambda index, conv, part, inputs: row_step(conv, part, inputs))


def block_pixel_step(block, cache, x, skip, gate_bias, column, image_indices=None, weights=None):
    """A ``"down_right"`` block at one pixel ``x [B, 1, 1, F]`` of the row in progress: ``(y, new cache)``
    (``image_indices``: see :func:`pixel_window`; ``weights``: :func:`block_window_weights` computed once by the
    caller)."""
    weights = weights or (None, None)
    return _incremental(block, cache, x, skip, gate_bias, lambda index, conv, part, inputs: pixel_step(
        conv, part, column, inputs, image_indices, weights[index]))


def block_window_weights(block, dtype):
    """Both convolutions' :func:`window_weights`, for :func:`block_pixel_step`."""
    return window_weights(block.conv_in, dtype), window_weights(block.conv_out, dtype)


def block_next_row(cache):
    """A block's pixel caches at the start of a new row (see :func:`next_row`)."""
    return tuple(next_row(part) for part in cache)


def _incremental(block, cache, x, skip, gate_bias, step):
    """``block.gated`` with each convolution run by ``step(index, conv, its cache, inputs) -> (output, new cache)``
    (index 0 for ``conv_in``, 1 for ``conv_out``)."""
    caches = list(cache)

    def convolution(index):
        def run(inputs):
            output, caches[index] = step(index, (block.conv_in, block.conv_out)[index], caches[index], inputs)
            return output
        return run

    return block.gated(x, convolution(0), skip, convolution(1), gate_bias), tuple(caches)
