"""PixelCNN++ (Salimans et al. 2017) for Keras 3, conditioned at every block on a spatial tensor u.

Vocabulary as in the original: ``down_shift``/``right_shift``, down-shifted convolutions (the "u" stream, which sees
only rows above) and down-right-shifted convolutions (the "ul" stream, which sees rows above and pixels to the
left), gated resnets with ``concat_elu`` and dropout, a downsampling (up) pass and an upsampling (down) pass with
skip connections between matching blocks.

Causality invariant: the output at pixel (i, j) depends only on input pixels strictly before (i, j) in raster order
(every channel of them) and on the condition. The strided and transposed convolutions below keep it: a stride-2
output at (i', j') stands for the block whose top-left pixel is (2i', 2j') and sees only pixels before that pixel,
and a transposed convolution writes (i', j') only to high-resolution positions at or after (2i', 2j').
``tests/test_hybrid.py`` checks the invariant with gradients.

Conditioning: a 1x1 projection of u, average-pooled to the block's resolution, is added to every gated resnet's
gate pre-activations (the spatial form of PixelCNN++'s ``h`` conditioning; AGAVE conditions the same way). With
``conditional=False`` the network is the unconditional PixelCNN++ (no projections, no condition input): the
architecture of ``tfd.PixelCNN`` in ``benchmarks/train_throughput.py``, and a baseline without the VAE.
"""

import keras
import tensorflow as tf

from gd_bottleneck.noise import SeededDropout
from gd_bottleneck.precision import policy_scope
from gd_bottleneck.seeding import derived_seeds
from gd_bottleneck.validation import check_int, check_rate, check_seed
from gd_bottleneck.weight_norm import WeightNormConv2D, WeightNormConv2DTranspose, WeightNormDense


def without_edge(x, axis, first):
    """``x`` [B, H, W, C] without its first (``first``) or last row (``axis=1``) or column (``axis=2``).

    The same values as ``x[:, 1:]`` or ``x[:, :-1]``, written as ``tf.slice``: indexing builds a ``StridedSlice``
    whose gradient is much slower than a ``Slice``'s on CPU, and the shifts below run in every PixelCNN++ layer
    (docs/design.md, "Measurements behind the code")."""
    begin, size = [0, 0, 0, 0], [-1, -1, -1, -1]
    if first:
        begin[axis] = 1
    else:
        size[axis] = (x.shape[axis] if x.shape[axis] is not None else tf.shape(x)[axis]) - 1
    return tf.slice(x, begin, size)


def down_shift(x):
    """Shift a [B, H, W, C] map down by one row (zeros enter at the top)."""
    return tf.pad(without_edge(x, axis=1, first=False), [[0, 0], [1, 0], [0, 0], [0, 0]])


def right_shift(x):
    """Shift a [B, H, W, C] map right by one column (zeros enter at the left)."""
    return tf.pad(without_edge(x, axis=2, first=False), [[0, 0], [0, 0], [1, 0], [0, 0]])


def concat_elu(x):
    """ELU of ``[x, -x]`` along the channels: keeps both signs' information through the nonlinearity."""
    return tf.nn.elu(tf.concat([x, -x], axis=-1))


@keras.saving.register_keras_serializable(package="gd_bottleneck")
class ShiftedConv2D(keras.layers.Layer):
    """A convolution padded so that it never looks below (``"down"``) or below/right (``"down_right"``).

    ``"down"`` with kernel (kh, kw): pads kh-1 rows on top and (kw-1)/2 columns each side, so output (i, j) sees
    rows i-kh+1..i, columns j-(kw-1)/2..j+(kw-1)/2. ``"down_right"``: pads kh-1 rows on top and kw-1 columns on the
    left, so output (i, j) sees rows i-kh+1..i, columns j-kw+1..j. With ``strides=2`` the output has half the size.
    """

    def __init__(self, filters, kernel_size, shift, strides=1, kernel_initializer="glorot_uniform", weight_norm=False,
                 init_scale=1.0, **kwargs):
        super().__init__(**kwargs)
        if shift not in ("down", "down_right"):
            raise ValueError(f"Argument `shift` must be 'down' or 'down_right'. Received: shift={shift!r}")
        self.filters, self.kernel_size, self.shift, self.strides = filters, tuple(kernel_size), shift, strides
        self.weight_norm, self.init_scale = weight_norm, init_scale
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        kh, kw = self.kernel_size
        horizontal = [(kw - 1) // 2, (kw - 1) // 2] if shift == "down" else [kw - 1, 0]
        self.padding = [[0, 0], [kh - 1, 0], horizontal, [0, 0]]
        options = {"init_scale": init_scale} if weight_norm else {}
        with policy_scope(self.dtype_policy):
            self.conv = (WeightNormConv2D if weight_norm else keras.layers.Conv2D)(
                filters, self.kernel_size, strides=strides, padding="valid", kernel_initializer=self.kernel_initializer,
                name="conv", **options)

    def build(self, input_shape):
        shape = list(input_shape)
        shape[1] = None if shape[1] is None else shape[1] + self.kernel_size[0] - 1
        shape[2] = None if shape[2] is None else shape[2] + self.kernel_size[1] - 1
        self.conv.build(tuple(shape))

    def call(self, x):
        # Pad, then a "valid" convolution: the same values as the convolution's own explicit padding, whose gradients
        # are slower on CPU (docs/design.md, "Measurements behind the code").
        return self.conv(tf.pad(x, self.padding))

    def effective_weights(self, dtype):
        """``(kernel [kh, kw, C, F], bias [F])`` in ``dtype``, as the convolution computes with them (the normalised
        kernel with weight norm): what incremental evaluation (gd_bottleneck/incremental_layers.py) reads."""
        kernel = self.conv._direction(self.conv.scale) if self.weight_norm else self.conv.kernel
        return tf.cast(kernel, dtype), tf.cast(self.conv.bias, dtype)

    def compute_output_shape(self, input_shape):
        scale = lambda n: None if n is None else n // self.strides
        return (input_shape[0], scale(input_shape[1]), scale(input_shape[2]), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "shift": self.shift, "strides": self.strides,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "weight_norm": self.weight_norm, "init_scale": self.init_scale}


@keras.saving.register_keras_serializable(package="gd_bottleneck")
class ShiftedConv2DTranspose(keras.layers.Layer):
    """Stride-2 transposed convolution that doubles the resolution and keeps the shift invariant.

    Kernel (2, 3) for ``"down"`` (output cropped to drop the extra column, so it stays centred) and (2, 2) for
    ``"down_right"``: input (i', j') is written to rows 2i'..2i'+1 and to columns around (``"down"``) or at and
    right of (``"down_right"``) 2j', never to a position before (2i', 2j') in raster order.
    """

    def __init__(self, filters, shift, weight_norm=False, **kwargs):
        super().__init__(**kwargs)
        if shift not in ("down", "down_right"):
            raise ValueError(f"Argument `shift` must be 'down' or 'down_right'. Received: shift={shift!r}")
        self.filters, self.shift, self.weight_norm = filters, shift, weight_norm
        kernel = (2, 3) if shift == "down" else (2, 2)
        with policy_scope(self.dtype_policy):
            self.conv = (WeightNormConv2DTranspose if weight_norm else keras.layers.Conv2DTranspose)(
                filters, kernel, strides=2, padding="valid", name="deconv")

    def build(self, input_shape):
        self.conv.build(input_shape)

    def call(self, x):
        y = self.conv(x)  # [B, 2H, 2W + kw - 2, F]: input column j' lands on 2j' .. 2j' + kw - 1
        if self.shift == "down":
            y = without_edge(y, axis=2, first=True)  # 2W columns, input column j' centred on 2j' (2j'-1 .. 2j'+1)
        return y

    def compute_output_shape(self, input_shape):
        double = lambda n: None if n is None else 2 * n
        return (input_shape[0], double(input_shape[1]), double(input_shape[2]), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "shift": self.shift, "weight_norm": self.weight_norm}


@keras.saving.register_keras_serializable(package="gd_bottleneck")
class GatedResnet(keras.layers.Layer):
    """``x + a * sigmoid(b)`` with ``[a, b] = conv(dropout(concat_elu(conv(concat_elu(x)) + nin(skip)))) + nin(h)``.

    Call arguments: ``x [B, H, W, F]``; ``skip`` (the other stream or the matching up-pass block, any channels, or
    None); ``condition`` (u pooled to this resolution; None for a block built with ``conditional=False``, which has
    no ``nin(h)`` term); ``training`` (dropout only).
    """

    def __init__(self, filters, shift, dropout, seed, has_skip, weight_norm=False, conditional=True, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.shift, self.dropout, self.seed, self.has_skip = filters, shift, dropout, seed, has_skip
        self.weight_norm, self.conditional = weight_norm, bool(conditional)
        kernel = (2, 3) if shift == "down" else (2, 2)
        # The gate starts near zero (output std ~0.1 of its input's), so each block starts close to the identity:
        # a small initializer, or with weight norm a data-dependent scale of 0.1 (PixelCNN++'s init_scale).
        small = keras.initializers.VarianceScaling(0.01, mode="fan_in", distribution="truncated_normal")
        dense = WeightNormDense if weight_norm else keras.layers.Dense
        with policy_scope(self.dtype_policy):
            self.conv_in = ShiftedConv2D(filters, kernel, shift, weight_norm=weight_norm, name="conv_in")
            self.skip_projection = dense(filters, name="skip_projection") if has_skip else None
            self.drop = SeededDropout(dropout, seed=seed, name="dropout")
            self.conv_out = ShiftedConv2D(2 * filters, kernel, shift, kernel_initializer=small,
                                          weight_norm=weight_norm, init_scale=0.1, name="conv_out")
            self.condition_projection = (keras.layers.Dense(2 * filters, kernel_initializer=small, name="condition")
                                         if self.conditional else None)

    def call(self, x, skip=None, condition=None, training=None):
        return self.gated(x, self.conv_in, skip, lambda h: self.conv_out(self.drop(h, training=training)),
                          self.gate_bias(condition))

    def gated(self, x, conv_in, skip, conv_out, gate_bias):
        """The block's maths with the two convolutions given as functions: whole maps here, a row or a pixel in
        incremental evaluation (gd_bottleneck/incremental_layers.py), so the maths lives in one place."""
        hidden = conv_in(concat_elu(x))
        if self.skip_projection is not None:
            hidden = hidden + self.skip_projection(concat_elu(skip))
        gates = conv_out(concat_elu(hidden))
        if gate_bias is not None:
            gates = gates + gate_bias
        a, b = tf.split(gates, 2, axis=-1)
        return x + a * tf.sigmoid(b)

    def gate_bias(self, condition):
        """The conditioning term of the gates, ``[B, H, W, 2F]`` (None for an unconditional block); the cached
        sampler computes it once per image."""
        if not self.conditional:
            if condition is not None:
                raise ValueError(f"Block {self.name!r} was built with conditional=False: argument `condition` must "
                                 f"be None. Received a tensor of shape {condition.shape}.")
            return None
        if condition is None:
            raise ValueError(f"Block {self.name!r} is conditional: argument `condition` is required.")
        return self.condition_projection(condition)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "shift": self.shift, "dropout": self.dropout,
                "seed": self.seed, "has_skip": self.has_skip, "weight_norm": self.weight_norm,
                "conditional": self.conditional}


@keras.saving.register_keras_serializable(package="gd_bottleneck")
class PixelCNN(keras.layers.Layer):
    """The PixelCNN++ network: ``(x [B, H, W, 3] in [-1, 1], u [B, H, W, Cu]) -> v [B, H, W, output_dim]``, or
    ``x -> v`` when built with ``conditional=False``.

    ``stages`` resolutions (H, H/2, H/4 for 3), ``resnets_per_stage`` gated resnets per stream and stage on the way
    down in resolution and one more (except at the coarsest stage) on the way back up: 64 gated resnets for the
    paper's 5 x 3. ``v_j`` depends only on pixels before j (raster order) and on u.

    Args:
        filters: channels F of both streams (160 in the paper).
        resnets_per_stage: gated resnets per stream per stage on the up pass (5).
        stages: number of resolutions (3).
        dropout: binary dropout rate inside every gated resnet (0.5).
        output_dim: size of v per pixel (10).
        seed: base seed of the dropout layers.
        weight_norm: weight-normalised convolutions and projections (gd_bottleneck/weight_norm.py), initialised
            from data by ``HybridVAE.initialize_from_data``.
        conditional: whether every gated resnet adds a projection of u to its gates (True: called on ``[x, u]``).
            False gives the unconditional PixelCNN++, called on ``x`` alone, with no projections to compute.
    """

    def __init__(self, filters, resnets_per_stage, stages, dropout, output_dim, seed=None, weight_norm=False,
                 conditional=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = check_int(filters, "filters", 1)
        self.resnets_per_stage = check_int(resnets_per_stage, "resnets_per_stage", 1)
        self.stages = check_int(stages, "stages", 1)
        self.dropout = check_rate(dropout, "dropout")
        self.output_dim = check_int(output_dim, "output_dim", 1)
        self.seed = check_seed(seed)
        self.weight_norm = wn = bool(weight_norm)
        if not isinstance(conditional, bool):
            raise ValueError(f"Argument `conditional` must be True or False. Received: conditional={conditional!r}")
        self.conditional = conditional
        f, r, s = self.filters, self.resnets_per_stage, self.stages
        up_count, down_count = r * s, r * s + (s - 1)
        seeds = iter(derived_seeds(self.seed, 2 * (up_count + down_count)))
        block = lambda shift, has_skip, name: GatedResnet(f, shift, self.dropout, next(seeds), has_skip,  # noqa: E731
                                                          weight_norm=wn, conditional=conditional, name=name)
        with policy_scope(self.dtype_policy):  # the whole network computes in this layer's dtype policy
            self.first_rows = ShiftedConv2D(f, (2, 3), "down", weight_norm=wn, name="first_rows")
            self.first_row_left = ShiftedConv2D(f, (1, 3), "down", weight_norm=wn, name="first_row_left")
            self.first_column_left = ShiftedConv2D(f, (2, 1), "down_right", weight_norm=wn, name="first_column_left")
            self.up_u = [block("down", False, f"up_u_{i}") for i in range(up_count)]
            self.up_ul = [block("down_right", True, f"up_ul_{i}") for i in range(up_count)]
            self.downsample_u = [ShiftedConv2D(f, (2, 3), "down", strides=2, weight_norm=wn,
                                               name=f"downsample_u_{i}") for i in range(s - 1)]
            self.downsample_ul = [ShiftedConv2D(f, (2, 2), "down_right", strides=2, weight_norm=wn,
                                                name=f"downsample_ul_{i}") for i in range(s - 1)]
            self.down_u = [block("down", True, f"down_u_{i}") for i in range(down_count)]
            self.down_ul = [block("down_right", True, f"down_ul_{i}") for i in range(down_count)]
            self.upsample_u = [ShiftedConv2DTranspose(f, "down", weight_norm=wn, name=f"upsample_u_{i}")
                               for i in range(s - 1)]
            self.upsample_ul = [ShiftedConv2DTranspose(f, "down_right", weight_norm=wn, name=f"upsample_ul_{i}")
                                for i in range(s - 1)]
        # v is float32 whatever the policy: it goes through the bottleneck into the likelihood's parameters.
        self.output_head = (WeightNormDense if wn else keras.layers.Dense)(self.output_dim, dtype="float32",
                                                                           name="output_head")

    def call(self, inputs, training=None):
        x, condition = self._image_and_condition(inputs)
        r, s = self.resnets_per_stage, self.stages
        x = tf.concat([x, tf.ones_like(x[..., :1])], axis=-1)  # marks real pixels apart from zero padding
        conditions = self.conditions(condition)

        u_list = [down_shift(self.first_rows(x))]
        ul_list = [down_shift(self.first_row_left(x)) + right_shift(self.first_column_left(x))]
        for stage in range(s):
            for i in range(stage * r, (stage + 1) * r):
                u_list.append(self.up_u[i](u_list[-1], condition=conditions[stage], training=training))
                ul_list.append(self.up_ul[i](ul_list[-1], skip=u_list[-1], condition=conditions[stage],
                                             training=training))
            if stage < s - 1:
                u_list.append(self.downsample_u[stage](u_list[-1]))
                ul_list.append(self.downsample_ul[stage](ul_list[-1]))

        u, ul = u_list.pop(), ul_list.pop()
        index = 0
        for stage in reversed(range(s)):
            for _ in range(r + (stage < s - 1)):
                u = self.down_u[index](u, skip=u_list.pop(), condition=conditions[stage], training=training)
                ul = self.down_ul[index](ul, skip=tf.concat([u, ul_list.pop()], axis=-1),
                                         condition=conditions[stage], training=training)
                index += 1
            if stage > 0:
                u, ul = self.upsample_u[stage - 1](u), self.upsample_ul[stage - 1](ul)
        return self.output_head(tf.nn.elu(ul))

    def _image_and_condition(self, inputs):
        """``(x, u)`` from a conditional network's ``[x, u]``, ``(x, None)`` from an unconditional one's ``x``."""
        if self.conditional:
            if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
                raise ValueError(f"A conditional {type(self).__name__} is called on `inputs` = [x, u] (the image and "
                                 f"the condition). Received: {type(inputs).__name__}.")
            return tuple(inputs)
        if isinstance(inputs, (list, tuple)):
            raise ValueError(f"An unconditional {type(self).__name__} (conditional=False) is called on `inputs` = x "
                             f"alone. Received a {type(inputs).__name__} of {len(inputs)}.")
        return inputs, None

    def conditions(self, condition):
        """u average-pooled to every stage's resolution: ``[u, pool2(u), pool4(u), ...]`` (Nones without u)."""
        if condition is None:
            return [None] * self.stages
        return [condition] + [tf.nn.avg_pool2d(condition, 2**k, 2**k, "VALID") for k in range(1, self.stages)]

    def up_blocks(self, stage):
        """Indices into ``up_u``/``up_ul`` of the blocks at ``stage`` (0: full resolution)."""
        r = self.resnets_per_stage
        return list(range(stage * r, (stage + 1) * r))

    def down_blocks(self, stage):
        """Indices into ``down_u``/``down_ul`` of the blocks at ``stage`` (the down pass runs coarsest first, with
        one extra block at every stage but the coarsest)."""
        r, s = self.resnets_per_stage, self.stages
        start = sum(r + (later < s - 1) for later in range(stage + 1, s))
        return list(range(start, start + r + (stage < s - 1)))

    def compute_output_shape(self, input_shape):
        image_shape = input_shape[0] if self.conditional else input_shape
        return tuple(image_shape[:-1]) + (self.output_dim,)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "resnets_per_stage": self.resnets_per_stage,
                "stages": self.stages, "dropout": self.dropout, "output_dim": self.output_dim, "seed": self.seed,
                "weight_norm": self.weight_norm, "conditional": self.conditional}
