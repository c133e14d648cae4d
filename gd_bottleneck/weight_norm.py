"""Weight normalisation with data-dependent initialisation (Salimans & Kingma 2016), as PixelCNN++ uses it.

A weight-normalised layer keeps a direction ``v`` (Keras' ``kernel``) and a per-output-channel ``scale`` g, and
computes with ``kernel = g * v / ||v||`` (the norm over every kernel axis but the output channels): the length of
each filter is one parameter, decoupled from its direction, which conditions the optimisation better.

Data-dependent initialisation sets ``g`` and the bias from one batch so that every normalised layer starts with
outputs of zero mean and standard deviation ``init_scale`` per channel: inside :func:`data_dependent_initialization`,
the first eager call of each layer computes ``t = op(x, v / ||v||)`` and assigns ``g = init_scale / std(t)``,
``b = -mean(t) * g``. Layers are called in the network's order, so each one is initialised on the outputs of
already-initialised layers before it. ``HybridVAE.initialize_from_data`` runs that pass.

The layers subclass Keras' own (``Conv2D``, ``Conv2DTranspose``, ``Dense``), so shapes, padding, strides and
dtype policies behave as there; only the kernel they compute with differs.
"""

import contextlib

import keras
import tensorflow as tf

_state = {"initializing": False}


@contextlib.contextmanager
def data_dependent_initialization():
    """Within this context, eager calls of weight-normalised layers initialise their scale and bias from the batch
    (see the module docstring). Run the model on one batch inside it, eagerly, before training."""
    _state["initializing"] = True
    try:
        yield
    finally:
        _state["initializing"] = False


class WeightNormalized:
    """Mixin for a Keras layer with a ``kernel`` whose output channels are on ``output_axis`` (see module doc)."""

    output_axis = -1

    def __init__(self, *args, init_scale=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.init_scale = float(init_scale)

    def build(self, input_shape):
        super().build(input_shape)
        channels = self.kernel.shape[self.output_axis]
        self.scale = self.add_weight(shape=(channels,), initializer="ones", name="scale")

    def _direction(self, scale):
        """``scale * v / ||v||`` with ``scale`` broadcast along the output channels."""
        kernel = self.kernel
        rank = len(kernel.shape)
        axis = self.output_axis % rank
        norm = tf.sqrt(tf.reduce_sum(tf.square(kernel), axis=[a for a in range(rank) if a != axis], keepdims=True))
        shape = [1] * rank
        shape[axis] = -1
        return kernel * tf.reshape(tf.cast(scale, kernel.dtype), shape) / norm

    def _linear(self, inputs, kernel):
        raise NotImplementedError

    def _initialize(self, inputs):
        unit = self._linear(inputs, self._direction(tf.ones_like(self.scale)))
        mean, variance = tf.nn.moments(tf.cast(unit, tf.float32), axes=list(range(len(unit.shape) - 1)))
        scale = self.init_scale / tf.sqrt(variance + 1e-10)
        self.scale.assign(scale)
        self.bias.assign(-mean * scale)

    def call(self, inputs, *args, **kwargs):
        if _state["initializing"] and tf.executing_eagerly():
            self._initialize(inputs)
        outputs = self._linear(inputs, self._direction(self.scale)) + tf.cast(self.bias, inputs.dtype)
        return outputs if self.activation is None else self.activation(outputs)

    # Keras' Conv and Dense layers save only (kernel, bias) in .keras files (their LoRA/quantization formats); the
    # generic Layer format saves every variable, including the scale.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def get_config(self):
        return {**super().get_config(), "init_scale": self.init_scale}


@keras.saving.register_keras_serializable(package="gd_bottleneck")
class WeightNormConv2D(WeightNormalized, keras.layers.Conv2D):
    """``keras.layers.Conv2D`` with weight normalisation (kernel ``[kh, kw, in, out]``)."""

    def _linear(self, inputs, kernel):
        return self.convolution_op(inputs, kernel)


@keras.saving.register_keras_serializable(package="gd_bottleneck")
class WeightNormConv2DTranspose(WeightNormalized, keras.layers.Conv2DTranspose):
    """``keras.layers.Conv2DTranspose`` with weight normalisation (kernel ``[kh, kw, out, in]``)."""

    output_axis = 2

    def _linear(self, inputs, kernel):
        return keras.ops.conv_transpose(inputs, kernel, strides=list(self.strides), padding=self.padding,
                                        output_padding=self.output_padding, dilation_rate=self.dilation_rate,
                                        data_format=self.data_format)


@keras.saving.register_keras_serializable(package="gd_bottleneck")
class WeightNormDense(WeightNormalized, keras.layers.Dense):
    """``keras.layers.Dense`` with weight normalisation (kernel ``[in, out]``), applied along the last axis."""

    def _linear(self, inputs, kernel):
        return keras.ops.matmul(inputs, kernel)
