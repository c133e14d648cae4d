"""ResNet encoder and decoder: shapes at every supported size, block placement, posterior positivity."""

import numpy as np
import pytest
import tensorflow as tf

from gd_bottleneck.config import small
from gd_bottleneck.vae import Decoder, Encoder, blocks_per_resolution


@pytest.mark.parametrize("blocks, levels, expected", [(7, 4, [1, 2, 2, 2]), (2, 3, [0, 1, 1]), (4, 1, [4]),
                                                      (0, 2, [0, 0])])
def test_blocks_are_spread_with_the_remainder_at_the_coarse_end(blocks, levels, expected):
    assert blocks_per_resolution(blocks, levels) == expected


@pytest.mark.parametrize("size", [32, 16, 8, 4])
def test_encoder_and_decoder_shapes(size):
    cfg = small(size).replace(resnet_channels=16, resnet_bottleneck_channels=8, decoder_output_channels=12)
    images = tf.random.uniform([2, size, size, 3], -1.0, 1.0, seed=1)
    mean, scale = Encoder(cfg)(images)
    assert mean.shape == scale.shape == (2, 4, 4, 16)
    assert np.all(scale.numpy() > 0)
    assert Decoder(cfg)(mean).shape == (2, size, size, 12)


def test_encoder_sees_the_whole_image_and_decoder_output_depends_on_every_latent():
    cfg = small(16).replace(resnet_channels=16, resnet_bottleneck_channels=8)
    encoder, decoder = Encoder(cfg), Decoder(cfg)
    images = tf.random.uniform([1, 16, 16, 3], -1.0, 1.0, seed=2)
    z = tf.random.normal([1, 4, 4, 16], seed=3)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([images, z])
        mean, _ = encoder(images)
        u = decoder(z)
        mean_total, u_total = tf.reduce_sum(mean), tf.reduce_sum(u**2)
    assert np.all(np.abs(tape.gradient(mean_total, images).numpy()).sum(-1) > 0)
    assert np.all(np.abs(tape.gradient(u_total, z).numpy()).sum(-1) > 0)
