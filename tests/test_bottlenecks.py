"""GaussianDropoutBottleneck and VariationalBottleneck: behaviour, statistics, penalties and argument errors.

Serialization, checkpointing and replica behaviour common to every noisy layer live in test_conformance.py.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from gd_bottleneck import GaussianDropoutBottleneck, VariationalBottleneck, dropout_stddev


def random_input(shape, seed=0):
    return tf.constant(np.random.default_rng(seed).normal(size=shape), tf.float32)


# ---------------------------------------------------------------- GaussianDropoutBottleneck

@pytest.mark.parametrize("rate, expected", [(0.5, 1.0), (0.2, 0.5), (0.8, 2.0), (0.0, 0.0)])
def test_stddev_follows_the_papers_formula(rate, expected):
    assert dropout_stddev(rate) == pytest.approx(expected)
    assert GaussianDropoutBottleneck(rate).stddev == pytest.approx(expected)


def test_identity_at_test_time_bit_for_bit():
    x = random_input([8, 5, 5, 10])
    layer = GaussianDropoutBottleneck(0.5, seed=3)
    for training in (False, None):
        np.testing.assert_array_equal(layer(x, training=training).numpy(), x.numpy())
    model = keras.Sequential([keras.Input([5, 5, 10]), layer])
    np.testing.assert_array_equal(model.predict(x, verbose=0), x.numpy())


def test_rate_zero_is_the_identity_even_in_training():
    x = random_input([4, 7])
    np.testing.assert_array_equal(GaussianDropoutBottleneck(0.0)(x, training=True).numpy(), x.numpy())


def test_training_noise_is_multiplicative_with_mean_one_and_the_right_stddev():
    rate, n = 0.3, 400_000
    layer = GaussianDropoutBottleneck(rate, seed=11)
    eps = layer(tf.ones([n, 1]), training=True).numpy().ravel()
    sigma = math.sqrt(rate / (1 - rate))
    assert abs(eps.mean() - 1.0) < 5 * sigma / math.sqrt(n)
    assert abs(eps.std() - sigma) < 5 * sigma / math.sqrt(2 * n)
    # Multiplicative: scaling x scales y by the same factor for the same noise draw; zeros stay zero.
    twin = GaussianDropoutBottleneck(rate, seed=11)
    x = random_input([1000, 3])
    np.testing.assert_allclose(twin(-4.0 * x, training=True).numpy(),
                               -4.0 * layer.from_config(layer.get_config())(x, training=True).numpy(), rtol=1e-6)
    assert np.all(layer(tf.zeros([5, 5]), training=True).numpy() == 0.0)


def test_noise_is_fresh_per_call_seeded_and_adds_no_loss():
    x = tf.ones([16, 4])
    a, b = GaussianDropoutBottleneck(0.4, seed=5), GaussianDropoutBottleneck(0.4, seed=5)
    first, second = a(x, training=True).numpy(), a(x, training=True).numpy()
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(b(x, training=True).numpy(), first)
    np.testing.assert_array_equal(b(x, training=True).numpy(), second)
    assert not np.array_equal(GaussianDropoutBottleneck(0.4, seed=6)(x, training=True).numpy(), first)
    assert a.losses == []


def test_noise_is_the_same_in_graph_mode_and_reproducible_under_xla():
    x = random_input([6, 3])
    eager, traced = GaussianDropoutBottleneck(0.2, seed=9), GaussianDropoutBottleneck(0.2, seed=9)
    graph_step = tf.function(lambda t: traced(t, training=True))
    for _ in range(3):
        np.testing.assert_array_equal(graph_step(x).numpy(), eager(x, training=True).numpy())
    assert int(traced.noise_calls.numpy()) == 3
    # XLA lowers the stateless RNG to a different (equally valid) bit stream than TF's kernels, so XLA runs are
    # reproducible among themselves, not equal to non-XLA runs (documented in noise.py).
    xla_a, xla_b = GaussianDropoutBottleneck(0.2, seed=9), GaussianDropoutBottleneck(0.2, seed=9)
    step_a = tf.function(lambda t: xla_a(t, training=True), jit_compile=True)
    step_b = tf.function(lambda t: xla_b(t, training=True), jit_compile=True)
    outputs = [step_a(x).numpy() for _ in range(2)]
    np.testing.assert_array_equal(step_b(x).numpy(), outputs[0])
    np.testing.assert_array_equal(step_b(x).numpy(), outputs[1])
    assert not np.array_equal(outputs[0], outputs[1])


def test_gradient_flows_through_the_noise():
    layer, x = GaussianDropoutBottleneck(0.5, seed=1), random_input([3, 4])
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(layer(x, training=True))
    eps = layer.from_config(layer.get_config())(tf.ones([3, 4]), training=True)
    np.testing.assert_allclose(tape.gradient(total, x).numpy(), eps.numpy(), rtol=1e-6)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan"), "0.5", True, None, [0.1]])
def test_bad_rate_is_rejected_with_its_name_and_range(rate):
    with pytest.raises(ValueError, match=r"`dropout_rate`.*(\[0, 1\)|real number|NaN|is required)"):
        GaussianDropoutBottleneck(rate)


@pytest.mark.parametrize("seed", [-1, 2**31, 1.5, "7"])
def test_bad_seed_is_rejected(seed):
    with pytest.raises(ValueError, match="`seed`"):
        GaussianDropoutBottleneck(0.1, seed=seed)


# ---------------------------------------------------------------- VariationalBottleneck

def make_variational(units=4, beta=0.5, seed=2, input_shape=(6, 3, 3, 5)):
    layer = VariationalBottleneck(units, beta, seed=seed)
    layer.build(input_shape)
    # Biases that make the noise visible (scale ~ softplus(2) ~ 2) and the mean non-trivial.
    layer.mean_head.bias.assign(layer.mean_head.bias + 0.3)
    layer.scale_head.kernel.assign(layer.scale_head.kernel * 0.5)
    layer.scale_head.bias.assign(layer.scale_head.bias + 7.0)
    return layer


def numpy_kl_per_example(mean, scale):
    mean, scale = np.float64(mean), np.float64(scale)
    kl = 0.5 * (mean**2 + scale**2 - 1.0) - np.log(scale)
    return kl.reshape(kl.shape[0], -1).sum(axis=1)


def test_inference_returns_the_mean_without_noise():
    layer, x = make_variational(), random_input([6, 3, 3, 5])
    mean = layer.noise_distribution(x).loc.numpy()
    for training in (False, None):
        np.testing.assert_array_equal(layer(x, training=training).numpy(), mean)
    np.testing.assert_allclose(mean, x.numpy() @ layer.mean_head.kernel.numpy() + layer.mean_head.bias.numpy(),
                               rtol=1e-5, atol=1e-6)


def test_training_returns_a_reparameterized_sample_of_the_noise_distribution():
    layer, x = make_variational(), random_input([6, 3, 3, 5])
    dist = layer.noise_distribution(x)
    samples = np.stack([layer(x, training=True).numpy() for _ in range(400)])
    standardized = (samples - dist.loc.numpy()) / dist.scale.numpy()
    assert abs(standardized.mean()) < 5 / math.sqrt(standardized.size)
    assert abs(standardized.std() - 1.0) < 5 / math.sqrt(2 * standardized.size)
    raw = x.numpy().astype(np.float64) @ layer.scale_head.kernel.numpy() + layer.scale_head.bias.numpy()
    np.testing.assert_allclose(dist.scale.numpy(), np.logaddexp(0.0, raw - 5.0) + 1e-5, rtol=1e-5)


@pytest.mark.parametrize("training", [True, False])
def test_penalty_is_beta_times_batch_mean_of_summed_kl(training):
    beta = 0.37
    layer, x = make_variational(beta=beta), random_input([6, 3, 3, 5])
    layer(x, training=training)
    (penalty,) = layer.losses
    dist = layer.noise_distribution(x)
    expected = beta * numpy_kl_per_example(dist.loc.numpy(), dist.scale.numpy()).mean()
    np.testing.assert_allclose(float(penalty), expected, rtol=1e-5)
    tfp_kl = dist.kl_divergence(type(dist)(0.0, 1.0)).numpy().reshape(6, -1).sum(axis=1)
    np.testing.assert_allclose(layer.kl_per_example(dist).numpy(), tfp_kl, rtol=1e-5)


def test_penalty_gradient_reaches_both_heads_and_beta_zero_adds_nothing():
    layer, x = make_variational(beta=1.0), random_input([6, 3, 3, 5])
    with tf.GradientTape() as tape:
        layer(x, training=True)
        penalty = tf.add_n(layer.losses)
    grads = tape.gradient(penalty, layer.trainable_variables)
    assert all(g is not None and np.any(g.numpy() != 0) for g in grads)
    free = make_variational(beta=0.0)
    free(x, training=True)
    assert float(tf.add_n(free.losses)) == 0.0


@pytest.mark.parametrize("shape", [(7, 5), (2, 3, 5), (2, 4, 4, 5)])
def test_output_shape_replaces_the_last_axis(shape):
    layer = VariationalBottleneck(3, 0.1, seed=0)
    x = random_input(shape)
    assert layer(x, training=True).shape == shape[:-1] + (3,)
    assert layer.compute_output_shape(shape) == shape[:-1] + (3,)


@pytest.mark.parametrize("kwargs, name", [
    (dict(units=0, beta=0.1), "units"), (dict(units=2.0, beta=0.1), "units"), (dict(units=True, beta=0.1), "units"),
    (dict(units=4, beta=-0.01), "beta"), (dict(units=4, beta=float("inf")), "beta"),
    (dict(units=4, beta=float("nan")), "beta"), (dict(units=4, beta="1"), "beta")])
def test_bad_units_or_beta_are_rejected_by_name(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        VariationalBottleneck(**kwargs)


def test_the_strength_is_validated_once_per_road(monkeypatch):
    """One check where the setting enters: the layer's constructor for library callers (HybridVAE included), and
    RunConfig, with the same check, where the CLI must refuse a run before anything is written."""
    from gd_bottleneck import HybridVAE
    from gd_bottleneck.bottlenecks import Bottleneck
    from gd_bottleneck.training import RunConfig
    from tests.tiny_models import TINY

    calls, original = [], Bottleneck.check_strength.__func__

    def counting(cls, strength):
        calls.append((cls.kind, strength))
        return original(cls, strength)

    monkeypatch.setattr(Bottleneck, "check_strength", classmethod(counting))
    for road, expected in [(lambda: HybridVAE(TINY, bottleneck="gaussian_dropout", dropout_rate=0.1, seed=0),
                            ("gaussian_dropout", 0.1)),
                           (lambda: HybridVAE(TINY, bottleneck="variational", beta=0.2, seed=0), ("variational", 0.2)),
                           (lambda: RunConfig(model_dir="x", dropout_rate=0.3), ("gaussian_dropout", 0.3))]:
        calls.clear()
        road()
        assert calls == [expected]


def test_a_layer_saved_with_the_older_argument_name_still_loads():
    config = GaussianDropoutBottleneck(0.3, seed=4).get_config()
    assert config["dropout_rate"] == 0.3 and "rate" not in config
    legacy = {**{key: value for key, value in config.items() if key != "dropout_rate"}, "rate": 0.3}
    layer = GaussianDropoutBottleneck.from_config(legacy)
    assert layer.dropout_rate == 0.3 and layer.stddev == pytest.approx(math.sqrt(0.3 / 0.7))
