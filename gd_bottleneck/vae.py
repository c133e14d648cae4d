"""The VAE half of the hybrid model: a ResNet encoder to q(z | x) and a ResNet decoder from z to u.

Both are ResNets of pre-activation bottleneck blocks (ELU -> 1x1 to the bottleneck width -> ELU -> 3x3 -> ELU ->
1x1 back, added to the input), the paper's "7 blocks, 512 channels, 128 bottleneck channels, ELU".

Where the resolution changes (for 32x32 images and 4x4 latents, 3 halvings; the blocks are spread over the
resolutions, extra blocks going to the coarse end, where they are cheapest):

    encoder: x [B,32,32,3] -3x3-> [32,32,C] -blocks- -stride 2-> [16,16,C] -blocks- -> [8,8,C] -blocks- -> [4,4,C]
             -blocks- -1x1-> mean, scale [B,4,4,16]                        (7 blocks over 4 resolutions: 1,2,2,2)
    decoder: z [B,4,4,16] -3x3-> [4,4,C] -blocks- -x2-> [8,8,C] -blocks- -> [16,16,C] -blocks- -> [32,32,C]
             -blocks- -ELU, 1x1-> u [B,32,32,256]                                               (2,2,2,1)

Halving is a stride-2 3x3 convolution; doubling is a stride-2 4x4 transposed convolution.
"""

import keras
import tensorflow as tf

from gd_bottleneck.config import ModelConfig
from gd_bottleneck.precision import policy_scope


def blocks_per_resolution(num_blocks, num_resolutions):
    """Splits ``num_blocks`` over resolutions ordered fine -> coarse, the remainder going to the coarse end."""
    base, extra = divmod(num_blocks, num_resolutions)
    return [base + (i >= num_resolutions - extra) for i in range(num_resolutions)]


@keras.saving.register_keras_serializable(package="gd_bottleneck")
class BottleneckBlock(keras.layers.Layer):
    """``x + 1x1(elu(3x3(elu(1x1(elu(x))))))`` with a narrow middle of ``bottleneck_channels``."""

    def __init__(self, channels, bottleneck_channels, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.bottleneck_channels = channels, bottleneck_channels
        with policy_scope(self.dtype_policy):
            self.reduce = keras.layers.Conv2D(bottleneck_channels, 1, name="reduce")
            self.spatial = keras.layers.Conv2D(bottleneck_channels, 3, padding="same", name="spatial")
            self.expand = keras.layers.Conv2D(channels, 1, kernel_initializer="zeros", name="expand")

    def call(self, x):
        hidden = self.spatial(tf.nn.elu(self.reduce(tf.nn.elu(x))))
        return x + self.expand(tf.nn.elu(hidden))

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "bottleneck_channels": self.bottleneck_channels}


class _ResNet(keras.layers.Layer):
    """Shared by Encoder and Decoder: the config round trip and the flat list of blocks per resolution level.

    The network computes in the layer's dtype policy (``dtype``, see gd_bottleneck/precision.py); the layers that
    produce distribution parameters (the posterior head, u) are float32.
    """

    def __init__(self, config, fine_to_coarse, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        counts = blocks_per_resolution(config.resnet_blocks, config.vae_downsamplings + 1)
        self.blocks_per_level = counts if fine_to_coarse else counts[::-1]
        with policy_scope(self.dtype_policy):
            self.blocks = [BottleneckBlock(config.resnet_channels, config.resnet_bottleneck_channels,
                                           name=f"block_{i}") for i in range(sum(counts))]
            self.stem = keras.layers.Conv2D(config.resnet_channels, 3, padding="same", name="stem")

    def run_levels(self, h, resample):
        """Runs the blocks level by level, applying ``resample[level - 1]`` before every level but the first."""
        blocks = iter(self.blocks)
        for level, count in enumerate(self.blocks_per_level):
            if level > 0:
                h = resample[level - 1](h)
            for _ in range(count):
                h = next(blocks)(h)
        return h

    def get_config(self):
        return {**super().get_config(), "config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config):
        return cls(ModelConfig.from_dict(config.pop("config")), **config)


@keras.saving.register_keras_serializable(package="gd_bottleneck")
class Encoder(_ResNet):
    """``x [B, H, W, 3] in [-1, 1] -> (mean, scale)`` of q(z | x), each
    ``[B, latent_size, latent_size, latent_channels]``.

    ``scale = softplus(raw) + 1e-4``: positive, and starting near 0.7 so early KLs are moderate.
    """

    def __init__(self, config, **kwargs):
        super().__init__(config, fine_to_coarse=True, **kwargs)
        with policy_scope(self.dtype_policy):
            self.downsample = [keras.layers.Conv2D(config.resnet_channels, 3, strides=2, padding="same",
                                                   name=f"downsample_{i}") for i in range(config.vae_downsamplings)]
        self.posterior = keras.layers.Conv2D(2 * config.latent_channels, 1, dtype="float32", name="posterior")

    def call(self, x):
        h = self.run_levels(self.stem(x), self.downsample)
        mean, raw_scale = tf.split(self.posterior(tf.nn.elu(h)), 2, axis=-1)
        return mean, tf.math.softplus(raw_scale) + 1e-4


@keras.saving.register_keras_serializable(package="gd_bottleneck")
class Decoder(_ResNet):
    """``z [B, latent_size, latent_size, latent_channels] -> u [B, H, W, decoder_output_channels]``."""

    def __init__(self, config, **kwargs):
        super().__init__(config, fine_to_coarse=False, **kwargs)
        with policy_scope(self.dtype_policy):
            self.upsample = [keras.layers.Conv2DTranspose(config.resnet_channels, 4, strides=2, padding="same",
                                                          name=f"upsample_{i}")
                             for i in range(config.vae_downsamplings)]
        self.output_projection = keras.layers.Conv2D(config.decoder_output_channels, 1, dtype="float32",
                                                     name="output")

    def call(self, z):
        h = self.run_levels(self.stem(z), self.upsample)
        return self.output_projection(tf.nn.elu(h))
