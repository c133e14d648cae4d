"""HybridVAE: causality of p(x|z), the ELBO in bits/dim, training, replicas, presets, serialization, bad inputs."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from gd_bottleneck import HybridVAE, paper, small
from tests.dependencies import assert_sees_above_and_left_neighbours, pixel_dependencies, strictly_before
from tests.tiny_models import TINY

BOTTLENECK_KWARGS = {"none": {}, "gaussian_dropout": {"dropout_rate": 0.2}, "variational": {"beta": 0.5}}


@pytest.fixture(scope="module")
def tiny_model():
    return HybridVAE(TINY, seed=16)


def structured_images(count, size, seed=0):
    """Images with global structure (a coloured disc on a vertical gradient) and a little noise, uint8."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size] / size
    images = []
    for _ in range(count):
        background = rng.uniform(0, 255, 3) * (0.3 + 0.7 * rows[..., None])
        centre, radius = rng.uniform(0.25, 0.75, 2), rng.uniform(0.15, 0.3)
        disc = ((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 < radius**2)[..., None]
        image = np.where(disc, rng.uniform(0, 255, 3), background) + rng.normal(0, 4, (size, size, 3))
        images.append(np.clip(np.round(image), 0, 255))
    return np.stack(images).astype(np.uint8)


@pytest.mark.parametrize("bottleneck", ["none", "variational"])  # test-mode Gaussian dropout is the identity
def test_mixture_parameters_are_causal_in_the_image_and_depend_on_z(bottleneck):
    model = HybridVAE(TINY, bottleneck=bottleneck, seed=1, **BOTTLENECK_KWARGS[bottleneck])
    images = tf.constant(structured_images(1, 8), tf.float32)
    z = tf.random.normal([1, 4, 4, 4], seed=2)
    deps = pixel_dependencies(lambda x: model.decode_params(tf.repeat(z, x.shape[0], 0), x), images)
    assert not np.any(deps & ~strictly_before(8, 8)), "pixel j's parameters depend on pixel j or a later pixel"
    assert_sees_above_and_left_neighbours(deps)
    with tf.GradientTape() as tape:
        tape.watch(z)
        params = model.decode_params(z, images)
        total = tf.reduce_sum(params * tf.random.stateless_normal(params.shape[-1:], (3, 4)), axis=-1)
    on_z = tape.jacobian(total, z)  # [1, 8, 8, 1, 4, 4, 4]
    assert np.all(np.any(on_z.numpy() != 0, axis=(3, 4, 5, 6)))


def test_untrained_model_scores_about_8_bits_per_dim_on_uniform_noise():
    model = HybridVAE(small(16), seed=0)
    noise = np.random.default_rng(0).integers(0, 256, size=(16, 16, 16, 3)).astype(np.uint8)
    result = {name: float(tf.reduce_mean(value)) for name, value in model.elbo(noise).items()}
    # The mixture head starts at the flattest logistic mixture (8.28 bits/dim on uniform data, see
    # DiscretizedLogisticMixture.flat_params); the latents start nearly unused.
    assert 8.0 < result["recon_bpd"] < 8.4
    assert 0.0 < result["kl_bpd"] < 0.2
    assert result["elbo_bpd"] == pytest.approx(result["recon_bpd"] + result["kl_bpd"], rel=1e-6)


def test_small_model_training_reduces_the_elbo():
    images = structured_images(64, 8, seed=3)  # small() at 8x8: the same network, a quarter of the compute
    model = HybridVAE(small(8), bottleneck="gaussian_dropout", dropout_rate=0.1, seed=4)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    before = model.evaluate(images, batch_size=16, verbose=0, return_dict=True)
    history = model.fit(images, batch_size=16, epochs=8, verbose=0, shuffle=False)
    after = model.evaluate(images, batch_size=16, verbose=0, return_dict=True)
    print(f"small(8): elbo_bpd {before['elbo_bpd']:.3f} -> {after['elbo_bpd']:.3f} after 32 steps; "
          f"mi_bound_bpd {after['mi_bound_bpd']:.3f}")
    assert after["elbo_bpd"] < before["elbo_bpd"] - 1.0
    assert set(history.history) == {"loss", "elbo_bpd", "kl_bpd", "recon_bpd", "mi_bound_bpd"}
    assert after["loss"] == pytest.approx(after["elbo_bpd"], rel=1e-6)  # no penalty with Gaussian dropout
    assert np.isfinite(after["mi_bound_bpd"]) and after["mi_bound_bpd"] > 0


def test_paper_preset_builds_and_takes_a_training_step():
    model = HybridVAE(paper(), bottleneck="gaussian_dropout", dropout_rate=0.15, seed=0)
    count = model.count_params()
    parts = {name: getattr(model, name).count_params() for name in ("encoder", "decoder", "pixelcnn")}
    print(f"paper() parameters: {count:,} (encoder {parts['encoder']:,}, decoder {parts['decoder']:,}, "
          f"PixelCNN++ {parts['pixelcnn']:,})")
    assert 70_000_000 < count < 100_000_000
    # Eagerly: tracing the 82M-parameter train step costs ~100 s here, one eager step at batch 1 ~13 s.
    model.compile(optimizer=keras.optimizers.Adam(1e-4), run_eagerly=True)
    images = structured_images(1, 32, seed=5)
    watched = [model.mixer_output.kernel, model.pixelcnn.output_head.kernel, model.encoder.posterior.kernel]
    before = [w.numpy().copy() for w in watched]
    logs = model.fit(images, batch_size=1, epochs=1, verbose=0).history
    assert np.isfinite(logs["loss"][0])
    assert all(not np.array_equal(b, w.numpy()) for b, w in zip(before, watched))


def fit_weights(strategy, initial_weights, images, bottleneck):
    with strategy.scope():
        model = HybridVAE(TINY, bottleneck=bottleneck, seed=7, **BOTTLENECK_KWARGS[bottleneck])
        model.set_weights(initial_weights)
        # SGD: the update is linear in the gradient. Adam's first steps are sign-like, so they would amplify the
        # float-summation-order differences of near-zero gradients to +-lr and hide what this test checks.
        model.compile(optimizer=keras.optimizers.SGD(0.05))
    logs = model.fit(images, batch_size=4, epochs=1, shuffle=False, verbose=0).history
    return [w.numpy() for w in model.weights], logs


@pytest.mark.parametrize("bottleneck", ["gaussian_dropout"])  # posterior, dropout and bottleneck noise all active
def test_two_replicas_train_to_the_same_weights_as_one(bottleneck, two_replicas):
    images = structured_images(12, 8, seed=6)  # 3 global batches of 4
    initial = HybridVAE(TINY, bottleneck=bottleneck, seed=7, **BOTTLENECK_KWARGS[bottleneck]).get_weights()
    one, logs_one = fit_weights(tf.distribute.OneDeviceStrategy("/cpu:0"), initial, images, bottleneck)
    two, logs_two = fit_weights(two_replicas, initial, images, bottleneck)
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(one, initial))
    assert moved > 1e-3  # the weights did change, with dropout, bottleneck and posterior noise all active
    for a, b in zip(one, two):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logs_two["loss"], logs_one["loss"], rtol=1e-4)


@pytest.mark.parametrize("bottleneck, config", [("none", TINY), ("gaussian_dropout", TINY), ("variational", TINY),
                                                ("gaussian_dropout", TINY.replace(weight_norm=True))],
                         ids=["none", "gaussian_dropout", "variational", "weight_norm"])
def test_saved_and_reloaded_model_gives_identical_test_elbo(bottleneck, config, tmp_path):
    model = HybridVAE(config, bottleneck=bottleneck, aux_weight=0.5, seed=8, **BOTTLENECK_KWARGS[bottleneck])
    rng = np.random.default_rng(0)  # move every float weight off its initial value, advance the noise streams
    model.set_weights([w + rng.normal(0, 0.05, w.shape).astype(w.dtype) if w.dtype.kind == "f" else w + 3
                       for w in model.get_weights()])
    images = structured_images(8, 8, seed=9)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.get_config() == model.get_config()
    expected, result = model.elbo(images), loaded.elbo(images)
    for name in expected:
        np.testing.assert_array_equal(result[name].numpy(), expected[name].numpy())
    np.testing.assert_array_equal(loaded(images, training=True)["elbo_bpd"].numpy(),
                                  model(images, training=True)["elbo_bpd"].numpy())  # same noise streams too


def test_test_mode_is_deterministic_and_injects_no_noise():
    model = HybridVAE(TINY, bottleneck="gaussian_dropout", dropout_rate=0.5, seed=10)
    images = structured_images(4, 8, seed=11)
    first = model.elbo(images)["elbo_bpd"].numpy()
    np.testing.assert_array_equal(model.elbo(images)["elbo_bpd"].numpy(), first)
    assert all(int(layer.noise_calls.numpy()) == 0
               for layer in model._flatten_layers() if hasattr(layer, "noise_calls"))
    assert not np.array_equal(model(images, training=True)["elbo_bpd"].numpy(), first)


@pytest.mark.parametrize("bottleneck, aux_weight", [("variational", 0.0), ("none", 0.7)])
def test_loss_adds_the_penalties_to_the_negative_elbo(bottleneck, aux_weight):
    model = HybridVAE(TINY, bottleneck=bottleneck, aux_weight=aux_weight, seed=12, **BOTTLENECK_KWARGS[bottleneck])
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    logs = model.evaluate(structured_images(8, 8, seed=13), batch_size=8, verbose=0, return_dict=True)
    if bottleneck == "variational":
        expected = logs["elbo_bpd"] + 0.5 * logs["bottleneck_kl_bpd"]
        assert logs["bottleneck_kl_bpd"] > 0
    else:
        expected = logs["elbo_bpd"] + aux_weight * logs["aux_bpd"]
        assert 7.0 < logs["aux_bpd"] < 9.0
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)


def test_bits_per_dim_is_nats_over_dims_times_ln2():
    model = HybridVAE(TINY, seed=14)
    images = structured_images(2, 8, seed=15)
    terms = model.terms(images)
    np.testing.assert_allclose(model.elbo(images)["elbo_bpd"].numpy(),
                               (terms["recon"] + terms["kl"]).numpy() / (8 * 8 * 3 * math.log(2)), rtol=1e-6)


@pytest.mark.parametrize("images, error, pattern", [
    (np.zeros([2, 8, 8]), ValueError, r"shape \[batch, 8, 8, 3\]"),
    (np.zeros([2, 8, 8, 1]), ValueError, r"shape \[batch, 8, 8, 3\]"),
    (np.zeros([2, 16, 16, 3]), ValueError, "must be 8x8"),
    (np.full([1, 8, 8, 3], 256.0), tf.errors.InvalidArgumentError, r"integer pixel values in \[0, 255\]"),
    (np.full([1, 8, 8, 3], -1.0), tf.errors.InvalidArgumentError, r"integer pixel values in \[0, 255\]"),
    (np.full([1, 8, 8, 3], 12.5), tf.errors.InvalidArgumentError, r"integer pixel values in \[0, 255\]"),
    (np.full([1, 8, 8, 3], np.nan), tf.errors.InvalidArgumentError, r"integer pixel values in \[0, 255\]"),
    (np.full([1, 8, 8, 3], True), ValueError, "dtype bool"),
])
def test_bad_images_are_rejected_with_a_clear_message(images, error, pattern, tiny_model):
    with pytest.raises(error, match=pattern):
        tiny_model.elbo(images)


def test_integer_and_uint8_images_give_the_same_result(tiny_model):
    images = structured_images(2, 8, seed=18)
    np.testing.assert_array_equal(tiny_model.elbo(images.astype(np.int32))["elbo_bpd"].numpy(),
                                  tiny_model.elbo(images)["elbo_bpd"].numpy())


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(bottleneck="dropout"), "`bottleneck`"), (dict(bottleneck="gaussian_dropout"), "`dropout_rate`"),
    (dict(bottleneck="variational"), "`beta`"), (dict(bottleneck="gaussian_dropout", dropout_rate=1.0), "dropout_rate"),
    (dict(bottleneck="variational", beta=-1.0), "`beta`"), (dict(aux_weight=-0.1), "`aux_weight`")])
def test_bad_model_arguments_are_named(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        HybridVAE(TINY, **kwargs)
