"""Samplers: the cached sampler against the reference, its per-pixel network outputs against a full pass.

Seed behaviour (determinism, batch-size invariance) is checked on the exported signatures in test_export.py.
"""

import numpy as np
import pytest
import tensorflow as tf

from benchmarks.sampling import context_dependent_weights
from gd_bottleneck import HybridVAE, sampling
from gd_bottleneck.pixelcnn import PixelCNN
from gd_bottleneck.pixelcnn_cache import IncrementalPixelCNN
from tests.tiny_models import RUN_MODEL, TINY

BOTTLENECK_KWARGS = {"none": {}, "gaussian_dropout": {"dropout_rate": 0.2}, "variational": {"beta": 0.5}}
# A second structure: 2 gated resnets per stage, 2 stages, wider mixture. RUN_MODEL (one stage) is the model the run
# tests train, sample from in their image summaries and export.
DEEPER = TINY.replace(pixelcnn_resnets_per_stage=2, pixelcnn_stages=2, mixture_components=5)


def perturbed_model(config, bottleneck="gaussian_dropout", seed=0):
    model = HybridVAE(config, bottleneck=bottleneck, seed=7, **BOTTLENECK_KWARGS[bottleneck])
    return context_dependent_weights(model, seed=seed)


def depth(row, col, stages):
    """How many stages below the first compute at (row, col), counted independently of the library."""
    return max(d for d in range(stages) if row % 2**d == 0 and col % 2**d == 0)


def incremental_outputs(model, images, z, static_depths=False, num_rows=None):
    """v at every pixel of the first ``num_rows`` rows (default all) from IncrementalPixelCNN, teacher-forced on
    ``images`` (uint8 [B, H, W, 3]); with ``static_depths`` every pixel's depth is given as its bounds (no run-time
    condition)."""
    size = model.config.image_size
    u = model.decoder(z)
    network = IncrementalPixelCNN(model.pixelcnn, u)
    state, outputs = network.initial_state(), []
    x = model.rescale(tf.cast(images, tf.float32))
    for row in range(num_rows or size):
        state = network.start_row(state, tf.constant(row))
        pixels = []
        for col in range(size):
            bounds = (depth(row, col, network.stages),) * 2 if static_depths else None
            v, state = network.output(state, tf.constant(row), tf.constant(col), bounds)
            pixels.append(v[:, 0, 0])
            state = network.set_pixel(state, tf.constant(row), tf.constant(col), x[:, row, col])
        outputs.append(tf.stack(pixels, axis=1))
    return tf.stack(outputs, axis=1).numpy()


def test_incremental_network_outputs_equal_a_full_pass_at_every_pixel():
    config = TINY  # DEEPER's incremental evaluation is covered by the sampler equality test below
    model = perturbed_model(config)
    images = np.random.default_rng(1).integers(0, 256, (2, 8, 8, 3)).astype(np.uint8)
    z = tf.random.stateless_normal([2, 4, 4, config.latent_channels], [3, 4])
    full = model.pixelcnn([model.rescale(tf.cast(images, tf.float32)), model.decoder(z)]).numpy()
    incremental = incremental_outputs(model, images, z)
    assert np.std(full) > 0.1  # outputs vary from pixel to pixel, so a misplaced cache would show
    np.testing.assert_allclose(incremental, full, rtol=1e-5, atol=1e-5)
    # Each pixel's depth given as known bounds (no run-time condition) gives the same outputs, bit for bit. Rows 0-2
    # hold every depth of an 8x8 image with 3 stages: 2 at (0, 0) and (0, 4), 1 at (2, 2), 0 on row 1.
    np.testing.assert_array_equal(incremental_outputs(model, images, z, static_depths=True, num_rows=3),
                                  incremental[:, :3])


@pytest.fixture(scope="module")
def three_stage_network():
    network = PixelCNN(filters=4, resnets_per_stage=1, stages=3, dropout=0.0, output_dim=2, seed=0)
    condition = tf.zeros([1, 4, 4, 2])
    network([tf.zeros([1, 4, 4, 3]), condition])
    return IncrementalPixelCNN(network, condition)


@pytest.mark.parametrize("bounds", [(-1, 0), (2, 1), (0, 3)])
def test_depth_bounds_outside_the_stages_are_refused_by_name(three_stage_network, bounds):
    network = three_stage_network  # 3 stages: depths 0..2
    with pytest.raises(ValueError, match=r"`depth_bounds` must satisfy 0 <= low <= high <= 2"):
        network.output(network.initial_state(), tf.constant(0), tf.constant(0), bounds)


# At test time "none" and Gaussian dropout are both the identity, so "none" needs no case of its own.
@pytest.mark.parametrize("config, bottleneck", [(TINY, "gaussian_dropout"), (DEEPER, "variational"),
                                                (TINY.replace(weight_norm=True), "gaussian_dropout"),
                                                (RUN_MODEL, "gaussian_dropout")],
                         ids=["gaussian_dropout", "variational_2_stages", "weight_norm", "one_stage"])
def test_cached_sampler_draws_exactly_the_reference_samples(config, bottleneck):
    model = perturbed_model(config, bottleneck)
    z = sampling.prior_latents(model, [5, 6], 6)
    reference = sampling.reference_samples(model, z, tf.constant([5, 6])).numpy()
    cached = sampling.cached_samples(model, z, tf.constant([5, 6])).numpy()
    assert reference.dtype == cached.dtype == np.uint8 and cached.shape == (6, 8, 8, 3)
    assert len(np.unique(reference)) > 100  # real samples, not saturated or constant images
    np.testing.assert_array_equal(cached, reference)


def test_a_reference_prefix_draws_the_full_samples_first_pixels_and_leaves_the_rest_zero():
    model = perturbed_model(TINY, "gaussian_dropout")
    z = sampling.prior_latents(model, [5, 6], 3)
    full = sampling.reference_samples(model, z, tf.constant([5, 6])).numpy()
    prefix = sampling.reference_samples(model, z, tf.constant([5, 6]), num_pixels=19).numpy()  # 2 rows and 3 pixels
    flat_full, flat_prefix = full.reshape(3, -1, 3), prefix.reshape(3, -1, 3)
    np.testing.assert_array_equal(flat_prefix[:, :19], flat_full[:, :19])
    assert not flat_prefix[:, 19:].any() and flat_full[:, 19:].any()
    with pytest.raises(ValueError, match=r"num_pixels must be in \[0, 64\]"):
        sampling.reference_samples(model, z, tf.constant([5, 6]), num_pixels=65)


def test_figure3_grids_share_z_along_rows_and_vary_the_decoder_noise():
    model = HybridVAE(TINY, bottleneck="gaussian_dropout", dropout_rate=0.1, seed=0)
    seed = tf.constant([4, 0])
    z = sampling.row_shared_latents(model, seed, num=10, columns=4).numpy()  # rows of 4, 4, 2
    assert z.shape[0] == 10
    for row in range(3):
        block = z[row * 4:(row + 1) * 4]
        np.testing.assert_array_equal(block, np.broadcast_to(block[0], block.shape))
    assert not np.array_equal(z[0], z[4]) and not np.array_equal(z[4], z[8])
    np.testing.assert_array_equal(z[::4], sampling.prior_latents(model, seed, 3).numpy())
