"""Mixed precision (gd_bottleneck/precision.py): which parts compute in 16 bits, and what must not change."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gd_bottleneck import HybridVAE, sampling
from gd_bottleneck.config import ModelConfig
from gd_bottleneck.precision import policy_scope
from gd_bottleneck.training.checkpoints import training_checkpoint
from tests.tiny_models import TINY


def make(precision, seed=0):
    return HybridVAE(TINY.replace(precision=precision), bottleneck="gaussian_dropout", dropout_rate=0.1, seed=seed)


def images(count=4, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, 8, 8, 3)).astype(np.uint8)


@pytest.mark.parametrize("value", ["float16", "bfloat16", "mixed", None, 32])
def test_an_unknown_precision_is_refused_with_the_choices(value):
    choices = r"`precision` must be one of \['float32', 'mixed_bfloat16', 'mixed_float16'\]"
    with pytest.raises(ValueError, match=choices):
        ModelConfig(precision=value)


@pytest.mark.parametrize("precision, compute", [("mixed_bfloat16", "bfloat16"), ("mixed_float16", "float16")])
def test_networks_compute_in_16_bits_and_the_likelihood_side_stays_float32(precision, compute):
    model = make(precision)
    sixteen = [model.pixelcnn.up_u[0].conv_in.conv, model.pixelcnn.down_ul[-1].skip_projection,
               model.pixelcnn.upsample_u[0].conv, model.encoder.blocks[0].spatial, model.decoder.upsample[0]]
    assert {layer.compute_dtype for layer in sixteen} == {compute}
    thirty_two = [model.pixelcnn.output_head, model.encoder.posterior, model.decoder.output_projection,
                  model.mixer_hidden, model.mixer_output, model.bottleneck_layer]
    assert {layer.compute_dtype for layer in thirty_two} == {"float32"}
    assert {variable.dtype for variable in model.trainable_variables} == {"float32"}  # master weights
    terms = model.terms(images(), training=True)
    assert {name: value.dtype for name, value in terms.items()} == {name: tf.float32 for name in terms}


def test_mixed_bfloat16_approximates_the_float32_model_with_the_same_weights():
    exact, mixed = make("float32"), make("mixed_bfloat16")
    for source, target in zip(exact.variables, mixed.variables):  # same architecture: same variable order
        target.assign(source)
    batch = images(8)
    expected, actual = exact.elbo(batch), mixed.elbo(batch)
    # Untrained weights put every pixel near the flat mixture: bf16 rounding (2^-8 relative) barely moves the ELBO.
    np.testing.assert_allclose(actual["elbo_bpd"].numpy(), expected["elbo_bpd"].numpy(), rtol=2e-3)
    assert not np.array_equal(actual["elbo_bpd"].numpy(), expected["elbo_bpd"].numpy())  # it did compute in bf16


def test_mixed_float16_training_uses_dynamic_loss_scaling_and_checkpoints_the_scale(tmp_path):
    model = make("mixed_float16")
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    before = [variable.numpy() for variable in model.trainable_variables]
    for _ in range(2):  # eagerly: tracing a train step would dominate this test's time
        logs = model.train_step(images(4))
    assert np.isfinite(float(logs["loss"])) and int(model.optimizer.iterations.numpy()) == 2
    changed = [not np.array_equal(old, new.numpy()) for old, new in zip(before, model.trainable_variables)]
    assert np.mean(changed) > 0.9  # the unscaled gradients were applied (a skipped, overflowing step changes none)
    path = training_checkpoint(model, model.optimizer).save(str(tmp_path / "ckpt"))
    saved = {name for name, _ in tf.train.list_variables(path)}
    assert any("dynamic_scale" in name for name in saved), sorted(saved)[:20]


def cpu_has_native_bfloat16():
    """Whether this CPU has bfloat16 arithmetic (AVX-512 BF16 or AMX on x86, BF16 on Arm), which oneDNN uses for
    both the reference pass's convolutions and the cached sampler's one-window matmuls."""
    try:
        with open("/proc/cpuinfo") as stream:
            flags = set(stream.read().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def test_the_cached_sampler_matches_the_reference_under_bfloat16():
    model = make("mixed_bfloat16")
    z = sampling.prior_latents(model, seed=[3, 4], num_images=2)
    cached = sampling.cached_samples(model, z, seed=[3, 4]).numpy().astype(np.int32)
    reference = sampling.reference_samples(model, z, seed=[3, 4]).numpy().astype(np.int32)
    if cpu_has_native_bfloat16():
        np.testing.assert_array_equal(cached, reference)
    else:
        # Without bfloat16 instructions TensorFlow falls back to kernels that sum a convolution and the same window's
        # matmul in different orders; a float32 sum that differs in its last bit can round to the neighbouring
        # bfloat16, and the drawn sub-pixel moves by one level. Measured on an AVX2-only AMD EPYC: 5 of 384
        # sub-pixels, each by 1. A cache that lost its causal state would change most sub-pixels by far more.
        difference = np.abs(cached - reference)
        assert difference.max() <= 1 and np.mean(difference > 0) <= 0.03, (difference.max(), np.mean(difference > 0))


def test_the_policy_survives_a_config_round_trip_and_the_scope_restores_the_default():
    model = HybridVAE.from_config(make("mixed_bfloat16").get_config())
    assert model.config.precision == "mixed_bfloat16"
    assert model.pixelcnn.down_u[0].conv_out.conv.compute_dtype == "bfloat16"
    before = keras.config.dtype_policy().name
    with pytest.raises(RuntimeError):
        with policy_scope("mixed_float16"):
            assert keras.layers.Dense(2).compute_dtype == "float16"
            raise RuntimeError
    assert keras.config.dtype_policy().name == before


def test_dropout_keeps_its_exact_rate_under_bfloat16():
    from gd_bottleneck.noise import SeededDropout

    layer = SeededDropout(0.15, seed=1, dtype="mixed_bfloat16")
    kept = layer(tf.ones([64, 64, 64]), training=True)
    assert kept.dtype == tf.bfloat16
    dropped = float(tf.reduce_mean(tf.cast(kept == 0, tf.float32)))
    # 262,144 draws: the standard error of the fraction is 7e-4; bfloat16 uniforms would drop 20/128 = 0.156.
    assert abs(dropped - 0.15) < 3e-3, dropped
