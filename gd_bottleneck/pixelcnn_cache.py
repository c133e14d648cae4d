"""Incremental evaluation of a ConditionalPixelCNN for generation (Fast PixelCNN++, Ramachandran et al. 2017).

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
  (r, c) is drawn. Each of its convolutions keeps a 2-row window of its input (previous row, current row so far).
* Strided downsampling reads the previous stage's window; transposed upsampling (stride 2, one input per output)
  reads the coarser stage's most recent row, which is complete up to the needed column by the time it is read.

The state is a flat dict of tensors (``tf.while_loop`` carries it); its keys name the cache they hold.
"""

import tensorflow as tf

from gd_bottleneck.pixelcnn import ConditionalPixelCNN, concat_elu


def crop(tensor, rows=None, columns=None):
    """``tensor[:, rows[0]:rows[0] + rows[1], columns[0]:columns[0] + columns[1]]`` for ``[B, H, W, ...]`` tensors,
    with tensor starts and static sizes, so the result keeps a static shape (and XLA can compile it)."""
    rank = tensor.shape.rank
    begin, size = [0] * rank, [-1] + list(tensor.shape[1:])
    for axis, window in ((1, rows), (2, columns)):
        if window is not None:
            begin[axis], size[axis] = window
    return tf.slice(tensor, tf.stack(begin), size)


def write_pixel(images, row, col, pixel):
    """``images [B, H, W, C]`` with ``pixel [B, C]`` written at (row, col) of every image."""
    batch = tf.shape(images)[0]
    where = tf.stack([tf.range(batch), tf.fill([batch], row), tf.fill([batch], col)], axis=1)
    return tf.tensor_scatter_nd_update(images, where, pixel)


def _pad_columns(row, left, right):
    return tf.pad(row, [[0, 0], [0, 0], [left, right], [0, 0]])


def _set_column(cache, column, value):
    """``cache [B, 2, W', C]`` with ``value [B, 1, 1, C]`` written at row 1 (the current row), column ``column``."""
    batch = tf.shape(cache)[0]
    index = tf.stack([tf.range(batch), tf.ones([batch], tf.int32), tf.fill([batch], column)], axis=1)
    return tf.tensor_scatter_nd_update(cache, index, value[:, 0, 0])


class IncrementalPixelCNN:
    """Pixel-by-pixel evaluation of ``network`` (test mode) on a batch with a fixed condition ``u``.

    Args:
        network: a built :class:`~gd_bottleneck.pixelcnn.ConditionalPixelCNN`.
        condition: the decoded tensor u, ``[B, H, W, Cu]`` (computed once per image).

    Use: ``state = initial_state()``; for each pixel in raster order: ``start_row`` when c == 0, then
    ``output(state, r, c) -> (v [B, 1, 1, output_dim], state)``, then ``set_pixel`` with the drawn pixel.
    """

    def __init__(self, network, condition):
        if not isinstance(network, ConditionalPixelCNN):
            raise TypeError(f"`network` must be a ConditionalPixelCNN. Received {type(network).__name__}.")
        self.net = net = network
        # Caches hold activations in the network's compute dtype (bfloat16/float16 under a mixed policy), and the
        # condition is cast before pooling, as the network's own call does.
        self.dtype = net.compute_dtype
        self.condition = condition = tf.cast(condition, self.dtype)
        self.batch = tf.shape(condition)[0]
        self.size = int(condition.shape[1])
        self.f, self.r, self.s = net.filters, net.resnets_per_stage, net.stages
        r, s = self.r, self.s
        # The conditioning terms, exactly as a full pass computes them (whole maps, once per image).
        conditions = [condition] + [tf.nn.avg_pool2d(condition, 2**k, 2**k, "VALID") for k in range(1, s)]
        self.up_blocks = [list(range(stage * r, (stage + 1) * r)) for stage in range(s)]
        self.down_blocks, start = [None] * s, 0
        for stage in reversed(range(s)):  # the down pass runs coarsest stage first
            count = r + (stage < s - 1)
            self.down_blocks[stage] = list(range(start, start + count))
            start += count
        self.up_gates = [net.up_u[i].condition_projection(conditions[st]) for st in range(s) for i in
                         self.up_blocks[st]]
        self.up_gates_ul = [net.up_ul[i].condition_projection(conditions[st]) for st in range(s) for i in
                            self.up_blocks[st]]
        self.down_gates = [None] * len(net.down_u)
        self.down_gates_ul = [None] * len(net.down_ul)
        for stage in range(s):
            for i in self.down_blocks[stage]:
                self.down_gates[i] = net.down_u[i].condition_projection(conditions[stage])
                self.down_gates_ul[i] = net.down_ul[i].condition_projection(conditions[stage])

    # ------------------------------------------------------------------ state

    def width(self, stage):
        return self.size // 2**stage

    def initial_state(self):
        """Zero caches (the zero padding above the image and left of it) and an empty image."""
        b, f = self.batch, self.f
        zeros = lambda *shape: tf.zeros([b, *shape], self.dtype)  # noqa: E731
        state = {"x": zeros(self.size + 1, self.size + 2, 4)}  # the network input, padded: top 1, sides 1
        for stage in range(self.s):
            w = self.width(stage)
            for name, blocks in (("up", self.up_blocks[stage]), ("down", self.down_blocks[stage])):
                for i in blocks:
                    for conv in ("in", "out"):
                        state[f"{name}_u_{i}_{conv}"] = zeros(1, w + 2, 2 * f)  # previous row, padded
                        state[f"{name}_ul_{i}_{conv}"] = zeros(2, w + 1, 2 * f)  # previous + current row
                    state[f"{name}_u_{i}_row"] = zeros(1, w, f)  # the block's u output on the current row
            if stage < self.s - 1:
                state[f"downsample_u_{stage}"] = zeros(1, w + 2, f)
                state[f"downsample_ul_{stage}"] = zeros(2, w + 1, f)
                state[f"upsampled_u_{stage}"] = zeros(2, w, f)  # 2 rows from the coarser stage's current row
            if stage > 0:
                state[f"down_ul_final_{stage}"] = zeros(w, f)  # the coarser stage's current row of ul
        state["ul_first_row"] = zeros(1, self.size, f)
        return state

    def set_pixel(self, state, row, col, rescaled):
        """Writes the drawn pixel ``rescaled [B, 3]`` (in [-1, 1]) into the network input."""
        value = tf.concat([tf.cast(rescaled, self.dtype), tf.ones([self.batch, 1], self.dtype)], axis=-1)
        return {**state, "x": write_pixel(state["x"], row + 1, col + 1, value)}

    # ------------------------------------------------------------------ row mode: the u stream

    def start_row(self, state, row):
        """At the start of image row ``row``: the u stream of every stage whose row starts here."""
        state = dict(state)
        x, net = state["x"], self.net
        above = tf.maximum(row - 1, 0)
        first_rows = net.first_rows.conv(crop(x, rows=(above, 2)))  # image rows row-2, row-1 -> u row `row`
        first_row_left = net.first_row_left.conv(crop(x, rows=(row, 1)))  # image row row-1
        state["ul_first_row"] = tf.where(row > 0, first_row_left, 0.0)
        return self._row_stage(state, 0, row, tf.where(row > 0, first_rows, 0.0))

    def _gated_row(self, state, block, key, u, skip, gate, stage_row):
        e = _pad_columns(concat_elu(u), 1, 1)
        hidden = block.conv_in.conv(tf.concat([state[f"{key}_in"], e], axis=1))
        state[f"{key}_in"] = e
        if skip is not None:
            hidden = hidden + block.skip_projection(concat_elu(skip))
        h = _pad_columns(concat_elu(hidden), 1, 1)
        gates = block.conv_out.conv(tf.concat([state[f"{key}_out"], h], axis=1)) + crop(gate, rows=(stage_row, 1))
        state[f"{key}_out"] = h
        a, b = tf.split(gates, 2, axis=-1)
        return u + a * tf.sigmoid(b)

    def _row_stage(self, state, stage, row, u):
        """Row ``row // 2**stage`` of stage ``stage``; ``u`` is its first up-pass entry ``[B, 1, W_s, F]``."""
        net, stage_row = self.net, row // 2**stage
        for key in self._pixel_caches(stage):  # this stage's pixel rows start here too: current row -> previous
            state[key] = tf.concat([state[key][:, 1:], tf.zeros_like(state[key][:, 1:])], axis=1)
        entries = [u]
        for i in self.up_blocks[stage]:
            entries.append(self._gated_row(state, net.up_u[i], f"up_u_{i}", entries[-1], None, self.up_gates[i],
                                           stage_row))
            state[f"up_u_{i}_row"] = entries[-1]
        if stage < self.s - 1:
            padded = _pad_columns(entries[-1], 1, 1)
            window = tf.concat([state[f"downsample_u_{stage}"], padded], axis=1)
            state[f"downsample_u_{stage}"] = padded
            deeper = (row % 2 ** (stage + 1)) == 0

            def run_deeper():
                inner = dict(state)
                return self._row_stage(inner, stage + 1, row, net.downsample_u[stage].conv(window))

            state = tf.cond(deeper, run_deeper, lambda: dict(state))
            u = crop(state[f"upsampled_u_{stage}"], rows=(stage_row % 2, 1))
        else:
            u = entries.pop()
        for i in self.down_blocks[stage]:
            u = self._gated_row(state, net.down_u[i], f"down_u_{i}", u, entries.pop(), self.down_gates[i], stage_row)
            state[f"down_u_{i}_row"] = u
        if stage > 0:
            state[f"upsampled_u_{stage - 1}"] = net.upsample_u[stage - 1](u)
        return state

    def _pixel_caches(self, stage):
        """Keys of stage ``stage``'s 2-row input windows of the ul stream's convolutions."""
        keys = [f"{name}_ul_{i}_{conv}" for name, blocks in (("up", self.up_blocks), ("down", self.down_blocks))
                for i in blocks[stage] for conv in ("in", "out")]
        return keys + ([f"downsample_ul_{stage}"] if stage < self.s - 1 else [])

    # ------------------------------------------------------------------ pixel mode: the ul stream

    def output(self, state, row, col):
        """v at pixel (row, col): ``([B, 1, 1, output_dim], state)``. Needs rows above and pixels left drawn."""
        state = dict(state)
        x, net = state["x"], self.net
        from_above = crop(state["ul_first_row"], columns=(col, 1))
        from_left = net.first_column_left.conv(crop(x, rows=(row, 2), columns=(col, 1)))  # pixels (row-1, col-1), (row, col-1)
        ul = from_above + tf.where(col > 0, from_left, 0.0)
        state, ul = self._pixel_stage(state, 0, row, col, ul)
        return net.output_head(tf.nn.elu(ul)), state

    def _gated_pixel(self, state, block, key, ul, skip, gate, stage_row, stage_col):
        e = concat_elu(ul)
        state[f"{key}_in"] = _set_column(state[f"{key}_in"], stage_col + 1, e)
        hidden = block.conv_in.conv(crop(state[f"{key}_in"], columns=(stage_col, 2)))
        hidden = hidden + block.skip_projection(concat_elu(skip))
        h = concat_elu(hidden)
        state[f"{key}_out"] = _set_column(state[f"{key}_out"], stage_col + 1, h)
        gates = block.conv_out.conv(crop(state[f"{key}_out"], columns=(stage_col, 2)))
        gates = gates + crop(gate, rows=(stage_row, 1), columns=(stage_col, 1))
        a, b = tf.split(gates, 2, axis=-1)
        return ul + a * tf.sigmoid(b)

    def _pixel_stage(self, state, stage, row, col, ul):
        """Stage ``stage`` at (row, col) // 2**stage; ``ul`` is its first up-pass entry ``[B, 1, 1, F]``."""
        net = self.net
        stage_row, stage_col = row // 2**stage, col // 2**stage
        pixel = lambda t: crop(t, columns=(stage_col, 1))  # noqa: E731  a row value at this column
        entries = [ul]
        for i in self.up_blocks[stage]:
            entries.append(self._gated_pixel(state, net.up_ul[i], f"up_ul_{i}", entries[-1],
                                             pixel(state[f"up_u_{i}_row"]), self.up_gates_ul[i], stage_row,
                                             stage_col))
        if stage < self.s - 1:
            key = f"downsample_ul_{stage}"
            state[key] = _set_column(state[key], stage_col + 1, entries[-1])
            window = crop(state[key], columns=(stage_col, 2))
            deeper = tf.logical_and(row % 2 ** (stage + 1) == 0, col % 2 ** (stage + 1) == 0)

            def run_deeper():
                inner, _ = self._pixel_stage(dict(state), stage + 1, row, col, net.downsample_ul[stage].conv(window))
                return inner

            state = tf.cond(deeper, run_deeper, lambda: dict(state))
            coarse = crop(state[f"down_ul_final_{stage + 1}"][:, tf.newaxis], columns=(stage_col // 2, 1))
            block = net.upsample_ul[stage](coarse)  # [B, 2, 2, F]: the 4 positions this coarse pixel writes
            ul = crop(block, rows=(stage_row % 2, 1), columns=(stage_col % 2, 1))
        else:
            ul = entries.pop()
        for i in self.down_blocks[stage]:
            skip = tf.concat([pixel(state[f"down_u_{i}_row"]), entries.pop()], axis=-1)
            ul = self._gated_pixel(state, net.down_ul[i], f"down_ul_{i}", ul, skip, self.down_gates_ul[i], stage_row,
                                   stage_col)
        if stage > 0:
            final = state[f"down_ul_final_{stage}"]
            index = tf.stack([tf.range(self.batch), tf.fill([self.batch], stage_col)], axis=1)
            state[f"down_ul_final_{stage}"] = tf.tensor_scatter_nd_update(final, index, ul[:, 0, 0])
        return state, ul
