"""Incremental evaluation of a PixelCNN for generation (Fast PixelCNN++, Ramachandran et al. 2017).

A full pass of the network for every generated pixel repeats almost all of its work: pixel j changes only the
activations at and after j. This module evaluates the *same* layers (their weights and ops, test mode) one pixel
at a time and computes every activation of every layer exactly once per image, so generating a whole image costs
about one full network pass plus per-step overhead.

Which activations are ready when (H x W image, stage s has resolution H/2^s, (r, c) the full-resolution pixel):

* The ``u`` stream ("down" convolutions, sees only rows above) is a function of whole rows: all of its stage-s
  activations on stage row r_s depend only on image rows < 2^s r_s. They are computed **a row at a time** at the
  start of image row r, for every stage with r % 2^s == 0 (row mode). Each of its convolutions keeps the previous
  row of its input (kernel height 2).
* The ``ul`` stream ("down-right" convolutions, sees the rows above and the pixels to the left) is computed **a
  pixel at a time** (pixel mode): stage s at position (r / 2^s, c / 2^s) when both divide, right before pixel
  (r, c) is drawn. Each of its convolutions keeps the input rows above, the row so far and that row's last values
  (:func:`~gd_bottleneck.incremental_layers.initial_pixel_cache`).
* Strided downsampling reads the previous stage's window; transposed upsampling (stride 2, one input per output)
  reads the coarser stage's most recent row, which is complete up to the needed column by the time it is read.

Every layer is evaluated by gd_bottleneck/incremental_layers.py (a convolution or a gated resnet a row or a pixel
at a time, ``on_window`` for the first layers and the strided ones), which reads the layers' weights and the block's
maths from gd_bottleneck/pixelcnn.py; this module only schedules them. The state is a dict of lists of tensors or
tuples of them, one entry per block or stage (``tf.while_loop`` carries it).
"""

import tensorflow as tf

from gd_bottleneck import incremental_layers as layers
from gd_bottleneck.pixelcnn import PixelCNN


def crop(tensor, rows=None, columns=None):
    """``tensor[:, rows[0]:rows[0] + rows[1], columns[0]:columns[0] + columns[1]]`` for ``[B, H, W, ...]`` tensors,
    with tensor starts and static sizes, so the result keeps a static shape (and XLA can compile it)."""
    rank = tensor.shape.rank
    begin, size = [0] * rank, [-1] + list(tensor.shape[1:])
    for axis, window in ((1, rows), (2, columns)):
        if window is not None:
            begin[axis], size[axis] = window
    return tf.slice(tensor, tf.stack(begin), size)


def write_pixel(images, row, col, pixel, image_indices=None):
    """``images [B, H, W, C]`` with ``pixel [B, C]`` written at (row, col) of every image (``image_indices``:
    ``tf.range(B)`` if the caller has it, see :func:`~gd_bottleneck.incremental_layers.pixel_window`)."""
    if image_indices is None:
        image_indices = tf.range(tf.shape(images)[0])
    where = tf.stack([image_indices, tf.fill(tf.shape(image_indices), row), tf.fill(tf.shape(image_indices), col)],
                     axis=1)
    return tf.tensor_scatter_nd_update(images, where, pixel)


def _copied(state):
    """A copy of the state whose lists can be changed without touching ``state`` (tensors are immutable)."""
    return {key: list(value) if isinstance(value, list) else value for key, value in state.items()}


class IncrementalPixelCNN:
    """Pixel-by-pixel evaluation of ``network`` (test mode) on a batch with a fixed condition ``u``.

    Args:
        network: a built conditional :class:`~gd_bottleneck.pixelcnn.PixelCNN`.
        condition: the decoded tensor u, ``[B, H, W, Cu]`` (computed once per image).

    Use: ``state = initial_state()``; for each pixel in raster order: ``start_row`` when c == 0, then
    ``output(state, r, c) -> (v [B, 1, 1, output_dim], state)``, then ``set_pixel`` with the drawn pixel.
    ``output`` and ``set_pixel`` change only the entries named in :attr:`PIXEL_KEYS`.
    """

    PIXEL_KEYS = ("x", "up_ul", "down_ul", "downsample_ul", "down_ul_final")  # what a pixel step changes

    def __init__(self, network, condition):
        if not isinstance(network, PixelCNN):
            raise TypeError(f"`network` must be a PixelCNN. Received {type(network).__name__}.")
        if not network.conditional:  # the samplers draw from HybridVAE models, whose network is conditional
            raise ValueError("`network` must be conditional (built with conditional=True): incremental evaluation "
                             "is implemented for the hybrid model's network.")
        self.net = net = network
        # Caches hold activations in the network's compute dtype (bfloat16/float16 under a mixed policy), and the
        # condition is cast before pooling, as the network's own call does.
        self.dtype = net.compute_dtype
        condition = tf.cast(condition, self.dtype)
        self.batch = tf.shape(condition)[0]
        self.image_indices = tf.range(self.batch)  # the image of every write (see incremental_layers.pixel_window)
        self.size = int(condition.shape[1])
        self.filters, self.stages = net.filters, net.stages
        # The matrix-form weights of every convolution the pixel steps evaluate, computed here, outside the loops.
        dtype = self.dtype
        self.up_weights_ul = [layers.block_window_weights(block, dtype) for block in net.up_ul]
        self.down_weights_ul = [layers.block_window_weights(block, dtype) for block in net.down_ul]
        self.downsample_weights_ul = [layers.window_weights(conv, dtype) for conv in net.downsample_ul]
        self.first_column_weights = layers.window_weights(net.first_column_left, dtype)
        # The conditioning terms of every gate, exactly as a full pass computes them (whole maps, once per image).
        conditions = net.conditions(condition)
        self.up_gates, self.up_gates_ul = [None] * len(net.up_u), [None] * len(net.up_ul)
        self.down_gates, self.down_gates_ul = [None] * len(net.down_u), [None] * len(net.down_ul)
        for stage in range(self.stages):
            for i in net.up_blocks(stage):
                self.up_gates[i] = net.up_u[i].gate_bias(conditions[stage])
                self.up_gates_ul[i] = net.up_ul[i].gate_bias(conditions[stage])
            for i in net.down_blocks(stage):
                self.down_gates[i] = net.down_u[i].gate_bias(conditions[stage])
                self.down_gates_ul[i] = net.down_ul[i].gate_bias(conditions[stage])

    # ------------------------------------------------------------------ state

    def width(self, stage):
        return self.size // 2**stage

    def _stage_of(self, blocks_of):
        """Block index -> stage, for ``net.up_blocks`` or ``net.down_blocks``."""
        return {i: stage for stage in range(self.stages) for i in blocks_of(stage)}

    def initial_state(self):
        """Zero caches (the zero padding above the image and left of it) and an empty image."""
        net, batch, filters, dtype = self.net, self.batch, self.filters, self.dtype
        up_stage, down_stage = self._stage_of(net.up_blocks), self._stage_of(net.down_blocks)

        def caches(blocks, stage_of):
            return [layers.block_initial_cache(block, batch, self.width(stage_of[i]), dtype)
                    for i, block in enumerate(blocks)]

        def rows(blocks, stage_of):
            return [tf.zeros([batch, 1, self.width(stage_of[i]), filters], dtype) for i in range(len(blocks))]

        coarse = range(self.stages - 1)  # stages with a coarser one below
        return {
            "x": tf.zeros([batch, self.size + 1, self.size + 2, 4], dtype),  # network input, padded: top 1, sides 1
            "ul_first_row": tf.zeros([batch, 1, self.size, filters], dtype),
            "up_u": caches(net.up_u, up_stage), "up_ul": caches(net.up_ul, up_stage),
            "down_u": caches(net.down_u, down_stage), "down_ul": caches(net.down_ul, down_stage),
            "up_u_rows": rows(net.up_u, up_stage),  # each u block's output on its stage's current row
            "down_u_rows": rows(net.down_u, down_stage),
            "downsample_u": [layers.initial_row_cache(net.downsample_u[stage], batch, self.width(stage), filters,
                                                      dtype) for stage in coarse],
            "downsample_ul": [layers.initial_pixel_cache(net.downsample_ul[stage], batch, self.width(stage), filters,
                                                         dtype) for stage in coarse],
            "upsampled_u": [tf.zeros([batch, 2, self.width(stage), filters], dtype)  # 2 rows from the stage below
                            for stage in coarse],
            "down_ul_final": [tf.zeros([batch, self.width(stage + 1), filters], dtype)  # stage + 1's ul row
                              for stage in coarse],
        }

    def set_pixel(self, state, row, col, rescaled):
        """Writes the drawn pixel ``rescaled [B, 3]`` (in [-1, 1]) into the network input."""
        value = tf.concat([tf.cast(rescaled, self.dtype), tf.ones([self.batch, 1], self.dtype)], axis=-1)
        return {**state, "x": write_pixel(state["x"], row + 1, col + 1, value, self.image_indices)}

    # ------------------------------------------------------------------ row mode: the u stream

    def start_row(self, state, row):
        """At the start of image row ``row``: the u stream of every stage whose row starts here."""
        state = _copied(state)
        x, net = state["x"], self.net
        above = tf.maximum(row - 1, 0)
        first_rows = layers.on_window(net.first_rows, crop(x, rows=(above, 2)))  # image rows row-2, row-1
        first_row_left = layers.on_window(net.first_row_left, crop(x, rows=(row, 1)))  # image row row-1
        state["ul_first_row"] = tf.where(row > 0, first_row_left, 0.0)
        return self._row_stage(state, 0, row, tf.where(row > 0, first_rows, 0.0))

    def _row_stage(self, state, stage, row, u):
        """Row ``row // 2**stage`` of stage ``stage``; ``u`` is its first up-pass entry ``[B, 1, W_s, F]``."""
        net, stage_row = self.net, row // 2**stage
        for i in net.up_blocks(stage):  # this stage's pixel rows start here too
            state["up_ul"][i] = layers.block_next_row(state["up_ul"][i])
        for i in net.down_blocks(stage):
            state["down_ul"][i] = layers.block_next_row(state["down_ul"][i])
        if stage < self.stages - 1:
            state["downsample_ul"][stage] = layers.next_row(state["downsample_ul"][stage])
        entries = [u]
        for i in net.up_blocks(stage):
            output, state["up_u"][i] = layers.block_row_step(net.up_u[i], state["up_u"][i], entries[-1], None,
                                                             crop(self.up_gates[i], rows=(stage_row, 1)))
            entries.append(output)
            state["up_u_rows"][i] = output
        if stage < self.stages - 1:
            downsample = net.downsample_u[stage]
            window, state["downsample_u"][stage] = layers.row_window(downsample, state["downsample_u"][stage],
                                                                     entries[-1])

            def run_deeper():
                return self._row_stage(_copied(state), stage + 1, row, layers.on_window(downsample, window))

            state = tf.cond(row % 2 ** (stage + 1) == 0, run_deeper, lambda: _copied(state))
            u = crop(state["upsampled_u"][stage], rows=(stage_row % 2, 1))
        else:
            u = entries.pop()
        for i in net.down_blocks(stage):
            u, state["down_u"][i] = layers.block_row_step(net.down_u[i], state["down_u"][i], u, entries.pop(),
                                                          crop(self.down_gates[i], rows=(stage_row, 1)))
            state["down_u_rows"][i] = u
        if stage > 0:
            state["upsampled_u"][stage - 1] = net.upsample_u[stage - 1](u)
        return state

    # ------------------------------------------------------------------ pixel mode: the ul stream

    def output(self, state, row, col, depth_bounds=None):
        """v at pixel (row, col): ``([B, 1, 1, output_dim], state)``. Needs rows above and pixels left drawn.

        ``depth_bounds``: ``(low, high)`` with ``low <= depth(row, col) <= high`` known when the graph is built
        (default ``(0, stages - 1)``). The deeper stages within the bounds are computed or skipped without a
        ``tf.cond``; only those in between are decided at run time. A condition in a pixel loop costs on every
        pixel, whichever branch runs: TensorFlow routes every tensor the branches use through a switch and marks
        every op of the branch not taken as dead."""
        low, high = (0, self.stages - 1) if depth_bounds is None else depth_bounds
        if not 0 <= low <= high <= self.stages - 1:
            raise ValueError(f"Argument `depth_bounds` must satisfy 0 <= low <= high <= {self.stages - 1} "
                             f"(stages - 1). "
                             f"Received: depth_bounds={depth_bounds!r}")
        state = _copied(state)
        x, net = state["x"], self.net
        from_above = crop(state["ul_first_row"], columns=(col, 1))
        # pixels (row-1, col-1) and (row, col-1)
        from_left = layers.on_window(net.first_column_left, crop(x, rows=(row, 2), columns=(col, 1)),
                                     self.first_column_weights)
        ul = from_above + tf.where(col > 0, from_left, 0.0)
        state, ul = self._pixel_stage(state, 0, row, col, ul, low, high)
        return net.output_head(tf.nn.elu(ul)), state

    def _pixel_stage(self, state, stage, row, col, ul, low, high):
        """Stage ``stage`` at (row, col) // 2**stage; ``ul`` is its first up-pass entry ``[B, 1, 1, F]``; the
        pixel's depth is within ``[low, high]`` (see :meth:`output`)."""
        net, images = self.net, self.image_indices
        stage_row, stage_col = row // 2**stage, col // 2**stage
        pixel = lambda t: crop(t, columns=(stage_col, 1))  # noqa: E731  a row value at this column
        gate = lambda t: crop(t, rows=(stage_row, 1), columns=(stage_col, 1))  # noqa: E731
        entries = [ul]
        for i in net.up_blocks(stage):
            output, state["up_ul"][i] = layers.block_pixel_step(net.up_ul[i], state["up_ul"][i], entries[-1],
                                                                pixel(state["up_u_rows"][i]),
                                                                gate(self.up_gates_ul[i]), stage_col, images,
                                                                self.up_weights_ul[i])
            entries.append(output)
        if stage < self.stages - 1:
            downsample = net.downsample_ul[stage]
            window, state["downsample_ul"][stage] = layers.pixel_window(downsample, state["downsample_ul"][stage],
                                                                        stage_col, entries[-1], images)

            def run_deeper():
                coarse_ul = layers.on_window(downsample, window, self.downsample_weights_ul[stage])
                inner, _ = self._pixel_stage(_copied(state), stage + 1, row, col, coarse_ul, low, high)
                return {key: inner[key] for key in self.PIXEL_KEYS}

            if stage < low:  # known to run
                state = {**state, **run_deeper()}
            elif stage < high:  # decided per pixel; only what a pixel step changes goes through the condition
                deeper = tf.logical_and(row % 2 ** (stage + 1) == 0, col % 2 ** (stage + 1) == 0)
                changed = tf.cond(deeper, run_deeper, lambda: {key: list(state[key]) if isinstance(state[key], list)
                                                                 else state[key] for key in self.PIXEL_KEYS})
                state = {**state, **changed}
            coarse = crop(state["down_ul_final"][stage][:, tf.newaxis], columns=(stage_col // 2, 1))
            block = net.upsample_ul[stage](coarse)  # [B, 2, 2, F]: the 4 positions this coarse pixel writes
            ul = crop(block, rows=(stage_row % 2, 1), columns=(stage_col % 2, 1))
        else:
            ul = entries.pop()
        for i in net.down_blocks(stage):
            skip = tf.concat([pixel(state["down_u_rows"][i]), entries.pop()], axis=-1)
            ul, state["down_ul"][i] = layers.block_pixel_step(net.down_ul[i], state["down_ul"][i], ul, skip,
                                                              gate(self.down_gates_ul[i]), stage_col, images,
                                                              self.down_weights_ul[i])
        if stage > 0:
            final = state["down_ul_final"][stage - 1]
            index = tf.stack([images, tf.fill(tf.shape(images), stage_col)], axis=1)
            state["down_ul_final"][stage - 1] = tf.tensor_scatter_nd_update(final, index, ul[:, 0, 0])
        return state, ul
