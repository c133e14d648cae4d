"""DiscretizedLogisticMixture against independent references: a float64 NumPy implementation written from the
PixelCNN++ formulas, 50-digit mpmath for extreme parameters, and TFP's QuantizedDistribution recipe."""

import mpmath
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import special, stats

from gd_bottleneck import DiscretizedLogisticMixture

tfd, tfb = tfp.distributions, tfp.bijectors


def random_params(seed, batch=(), components=10, channels=3, dtype=np.float32, log_scale_range=(-4.0, 0.0)):
    rng = np.random.default_rng(seed)
    return dict(
        logits=rng.normal(scale=2.0, size=batch + (components,)).astype(dtype),
        locs=rng.uniform(-1.1, 1.1, size=batch + (components, channels)).astype(dtype),
        log_scales=rng.uniform(*log_scale_range, size=batch + (components, channels)).astype(dtype),
        coeffs=np.tanh(rng.normal(size=batch + (components, channels * (channels - 1) // 2))).astype(dtype))


def reference_log_prob(x, logits, locs, log_scales, coeffs, num_bins=256):
    """PixelCNN++ eq. (2) with conditional colours for C=3 (r -> g, r -> b, g -> b), naive float64."""
    x, logits, locs, log_scales = (np.asarray(a, np.float64) for a in (x, logits, locs, log_scales))
    coeffs = np.zeros(locs.shape[:-1] + (3,)) if coeffs is None else np.asarray(coeffs, np.float64)
    top, half = num_bins - 1, 1.0 / (num_bins - 1)
    r, g, b = (2.0 * x[..., c, None] / top - 1.0 for c in range(3))  # [..., 1] each, broadcast over K
    means = [locs[..., 0], locs[..., 1] + coeffs[..., 0] * r, locs[..., 2] + coeffs[..., 1] * r + coeffs[..., 2] * g]
    log_components = logits - special.logsumexp(logits, axis=-1, keepdims=True)
    for value, rescaled, mean, log_scale in zip(np.moveaxis(x, -1, 0), (r, g, b), means,
                                                np.moveaxis(log_scales, -1, 0)):
        cdf = lambda t: special.expit((t - mean) / np.exp(log_scale))
        upper = np.where(value[..., None] >= top, 1.0, cdf(rescaled + half))
        lower = np.where(value[..., None] <= 0, 0.0, cdf(rescaled - half))
        log_components = log_components + np.log(upper - lower)
    return special.logsumexp(log_components, axis=-1)


def mpmath_log_prob(value, loc, log_scale, num_bins=256):
    """One component, one channel, at 50 significant digits, in forms free of cancellation (mpmath's exponent
    range is unbounded, so e^(1e16) is fine): sigma(a) = 1/(1+e^-a), 1-sigma(b) = 1/(1+e^b),
    sigma(a) - sigma(b) = e^a (1 - e^(b-a)) / ((1+e^a)(1+e^b))."""
    mpmath.mp.dps = 50
    top = num_bins - 1
    rescaled, half = mpmath.mpf(2 * value) / top - 1, mpmath.mpf(1) / top
    inv_scale = mpmath.exp(-mpmath.mpf(log_scale))
    a, b = (rescaled + half - loc) * inv_scale, (rescaled - half - loc) * inv_scale
    if value == 0:
        return float(-mpmath.log1p(mpmath.exp(-a)))
    if value == top:
        return float(-mpmath.log1p(mpmath.exp(b)))
    return float(a + mpmath.log(-mpmath.expm1(b - a)) - mpmath.log1p(mpmath.exp(a)) - mpmath.log1p(mpmath.exp(b)))


# ---------------------------------------------------------------- exactness

def test_all_256_cubed_colours_of_a_pixel_sum_to_one():
    dist = DiscretizedLogisticMixture(**random_params(0, log_scale_range=(-5.0, -1.0)))
    green, blue = np.meshgrid(np.arange(256.0), np.arange(256.0), indexing="ij")
    grid = np.stack([green.ravel(), blue.ravel()], axis=-1).astype(np.float32)  # [65536, 2]

    @tf.function(jit_compile=True)
    def mass_of_red_block(reds):  # reds [R]: total probability of all colours with those red values
        red = tf.repeat(reds, grid.shape[0])[:, None]
        colours = tf.concat([red, tf.tile(grid, [tf.shape(reds)[0], 1])], axis=1)
        return tf.reduce_sum(tf.cast(dist.prob(colours), tf.float64))

    total = sum(float(mass_of_red_block(tf.range(r, r + 32, dtype=tf.float32))) for r in range(0, 256, 32))
    assert total == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("seed, log_scale_range", [(1, (-7.0, -4.0)), (2, (-2.0, 2.0)), (3, (-30.0, 30.0))])
def test_all_colours_sum_to_one_at_16_bins_for_many_scales(seed, log_scale_range):
    params = random_params(seed, batch=(8,), log_scale_range=log_scale_range)
    params["locs"] *= 3.0  # some components centred well outside [-1, 1]
    dist = DiscretizedLogisticMixture(**params, num_bins=16)
    colours = np.stack(np.meshgrid(*[np.arange(16.0)] * 3, indexing="ij"), axis=-1).reshape(-1, 1, 3)
    totals = tf.reduce_sum(tf.cast(dist.prob(colours.astype(np.float32)), tf.float64), axis=0).numpy()
    np.testing.assert_allclose(totals, 1.0, atol=1e-5)


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-10), (np.float32, 2e-4)])
def test_log_prob_matches_a_float64_numpy_reference(dtype, tolerance):
    params = random_params(2, batch=(4, 5), dtype=dtype)
    x = np.random.default_rng(3).integers(0, 256, size=(4, 5, 3)).astype(dtype)
    x[0, :, 0], x[1, :, 1], x[2, :, 2] = 0, 255, 255  # every channel at an edge somewhere
    result = DiscretizedLogisticMixture(**params).log_prob(x).numpy()
    assert result.dtype == dtype
    np.testing.assert_allclose(result, reference_log_prob(x, **params), rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("num_bins", [2, 5, 256])
def test_log_prob_matches_tfp_quantized_logistics_without_conditioning(num_bins):
    params = random_params(4, batch=(6,), components=5)
    params["coeffs"] = None
    top = num_bins - 1
    components = tfd.Independent(tfd.QuantizedDistribution(
        tfd.TransformedDistribution(tfd.Logistic((params["locs"] + 1.0) * top / 2.0,
                                                 np.exp(params["log_scales"]) * top / 2.0), tfb.Shift(-0.5)),
        low=0.0, high=float(top)), reinterpreted_batch_ndims=1)
    reference = tfd.MixtureSameFamily(tfd.Categorical(logits=params["logits"]), components)
    x = np.random.default_rng(5).integers(0, num_bins, size=(10, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(DiscretizedLogisticMixture(**params, num_bins=num_bins).log_prob(x).numpy(),
                               reference.log_prob(x).numpy(), rtol=2e-5, atol=2e-5)


EXTREMES = [(value, loc, log_scale) for value in (0, 1, 127, 254, 255) for loc in (-1e3, -1.0, 0.3, 1e3)
            for log_scale in (-30.0, -7.0, 0.0, 20.0, 80.0)]


def test_extreme_parameters_are_exact_in_float64_against_mpmath():
    values, locs, log_scales = (np.array(column, np.float64) for column in zip(*EXTREMES))
    dist = DiscretizedLogisticMixture(np.zeros([len(values), 1]), locs[:, None, None], log_scales[:, None, None])
    result = dist.log_prob(values[:, None]).numpy()
    expected = np.array([mpmath_log_prob(*row) for row in EXTREMES])
    np.testing.assert_allclose(result, expected, rtol=1e-12)


def test_extreme_parameters_give_finite_values_and_gradients_in_float32():
    values, locs, log_scales = (np.array(column, np.float32) for column in zip(*EXTREMES))
    logits = np.tile(np.array([[1e4, -1e4, 0.0]], np.float32), [len(values), 1])
    locs = tf.Variable(np.repeat(locs[:, None, None], 3, axis=1))
    log_scales = tf.Variable(np.repeat(log_scales[:, None, None], 3, axis=1))
    logits = tf.Variable(logits)
    with tf.GradientTape() as tape:
        log_prob = DiscretizedLogisticMixture(logits, locs, log_scales, num_bins=256).log_prob(values[:, None])
        total = tf.reduce_sum(log_prob)
    assert np.all(np.isfinite(log_prob.numpy()))
    for gradient in tape.gradient(total, [logits, locs, log_scales]):
        assert np.all(np.isfinite(gradient.numpy()))
    moderate = np.abs(log_scales.numpy()[:, 0, 0]) <= 20.0  # where float32 has the precision for a 1e-4 check
    expected = np.array([mpmath_log_prob(*row) for row in EXTREMES])
    np.testing.assert_allclose(log_prob.numpy()[moderate], expected[moderate], rtol=1e-4)


def test_gradients_stay_finite_through_from_params_at_extreme_network_outputs():
    params = tf.Variable(np.random.default_rng(6).normal(scale=1e3, size=(4, 4, 100)).astype(np.float32))
    x = np.random.default_rng(7).integers(0, 256, size=(4, 4, 3)).astype(np.float32)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(DiscretizedLogisticMixture.from_params(params).log_prob(x))
    assert np.isfinite(total.numpy()) and np.all(np.isfinite(tape.gradient(total, params).numpy()))


def test_values_outside_the_support_have_zero_probability():
    dist = DiscretizedLogisticMixture(**random_params(8))
    outside = np.array([[0.5, 3.0, 4.0], [-1.0, 3.0, 4.0], [256.0, 3.0, 4.0], [3.0, 4.0, np.inf]], np.float32)
    assert np.all(dist.log_prob(outside).numpy() == -np.inf)
    strict = DiscretizedLogisticMixture(**random_params(8), validate_args=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="integers in \\[0, 255\\]"):
        strict.log_prob(outside)


# ---------------------------------------------------------------- sampling

def test_sample_frequencies_agree_with_prob_for_every_colour():
    params = random_params(9, components=3, log_scale_range=(-1.5, -0.2))
    dist = DiscretizedLogisticMixture(**params, num_bins=4)
    n = 120_000
    samples = dist.sample(n, seed=(4, 2)).numpy().astype(int)
    codes = samples[:, 0] * 16 + samples[:, 1] * 4 + samples[:, 2]
    observed = np.bincount(codes, minlength=64)
    colours = np.stack(np.meshgrid(*[np.arange(4.0)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    probs = dist.prob(colours.astype(np.float32)).numpy().astype(np.float64)
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    result = stats.chisquare(observed, probs / probs.sum() * observed.sum())
    assert result.pvalue > 1e-3, result
    # The conditioning matters in this test: with coeffs removed, the same samples are clearly rejected.
    independent = dict(params, coeffs=np.zeros_like(params["coeffs"]))
    probs_wrong = DiscretizedLogisticMixture(**independent, num_bins=4).prob(colours.astype(np.float32)).numpy()
    probs_wrong = probs_wrong.astype(np.float64)
    assert stats.chisquare(observed, probs_wrong / probs_wrong.sum() * observed.sum()).pvalue < 1e-6


def test_sample_frequencies_agree_with_prob_over_256_bins():
    params = random_params(10, components=4, channels=1, log_scale_range=(-3.0, -1.0))
    params["coeffs"] = None
    dist = DiscretizedLogisticMixture(**params)
    n = 200_000
    observed = np.bincount(dist.sample(n, seed=(7, 7)).numpy()[:, 0].astype(int), minlength=256)
    expected = dist.prob(np.arange(256.0, dtype=np.float32)[:, None]).numpy().astype(np.float64) * n
    keep = expected >= 5  # merge any sparse tail cells into one
    observed_cells, expected_cells = observed[keep], expected[keep]
    if not keep.all():
        observed_cells = np.append(observed_cells, observed[~keep].sum())
        expected_cells = np.append(expected_cells, expected[~keep].sum())
    expected_cells *= observed_cells.sum() / expected_cells.sum()
    assert stats.chisquare(observed_cells, expected_cells).pvalue > 1e-3


def test_samples_are_integers_in_range_seeded_and_shaped():
    dist = DiscretizedLogisticMixture(**random_params(11, batch=(2, 3), log_scale_range=(-2.0, 3.0)))
    first = dist.sample(5, seed=(1, 2)).numpy()
    assert first.shape == (5, 2, 3, 3) and dist.event_shape == [3] and dist.batch_shape == [2, 3]
    assert np.all(first == np.round(first)) and first.min() >= 0 and first.max() <= 255
    np.testing.assert_array_equal(dist.sample(5, seed=(1, 2)).numpy(), first)
    assert not np.array_equal(dist.sample(5, seed=(1, 3)).numpy(), first)
    assert np.all(np.isfinite(dist.log_prob(first).numpy()))


def test_sample_from_uniforms_is_the_inverse_cdf_of_a_single_component():
    # One component, one channel: the sample is the bin holding the logistic quantile of u.
    loc, log_scale = 0.2, -2.0
    dist = DiscretizedLogisticMixture([[0.0]], [[[loc]]], [[[log_scale]]])
    u = np.array([[1e-30], [0.1], [0.5], [0.9], [1 - 1e-7]], np.float32)
    quantile = loc + np.exp(log_scale) * special.logit(u.astype(np.float64))
    expected = np.clip(np.round((quantile + 1.0) * 127.5), 0, 255)
    np.testing.assert_array_equal(dist.sample_from_uniforms(np.full([5, 1], 0.5), u).numpy(), expected)


# ---------------------------------------------------------------- shapes, parameters, errors

def test_batch_shapes_broadcast_and_log_prob_broadcasts_over_values():
    rng = np.random.default_rng(12)
    dist = DiscretizedLogisticMixture(logits=rng.normal(size=(2, 1, 4)), locs=rng.normal(size=(3, 4, 3)),
                                      log_scales=rng.normal(size=(1, 1, 4, 3)) - 2.0)
    assert dist.batch_shape == [2, 3]  # (2, 1), (3,) and (1, 1) broadcast
    assert dist.log_prob(np.array([1.0, 2.0, 3.0])).shape == (2, 3)
    assert dist.log_prob(np.ones([5, 1, 1, 3])).shape == (5, 2, 3)
    assert dist.sample(seed=(0, 1)).shape == (2, 3, 3)
    sliced = dist[1]  # TFP batch slicing works through _parameter_properties
    assert sliced.batch_shape == [3]
    np.testing.assert_allclose(sliced.log_prob(np.full([3, 3], 7.0)).numpy(),
                               dist.log_prob(np.full([3, 3], 7.0)).numpy()[1], rtol=1e-6)


def test_from_params_splits_the_documented_layout():
    k, c = 10, 3
    assert DiscretizedLogisticMixture.num_params(k, c) == 100
    rng = np.random.default_rng(13)
    logits, locs = rng.normal(size=(2, k)), rng.normal(size=(2, k, c))
    log_scales, raw_coeffs = rng.normal(size=(2, k, c)) * 5.0, rng.normal(size=(2, k, 3))
    flat = np.concatenate([logits, locs.reshape(2, -1), log_scales.reshape(2, -1), raw_coeffs.reshape(2, -1)], -1)
    dist = DiscretizedLogisticMixture.from_params(flat.astype(np.float32))
    assert dist.num_components == k and dist.batch_shape == [2] and dist.event_shape == [3]
    np.testing.assert_allclose(dist.logits.numpy(), logits, rtol=1e-6)
    np.testing.assert_allclose(dist.locs.numpy(), locs, rtol=1e-6)
    np.testing.assert_allclose(dist.log_scales.numpy(), np.maximum(log_scales, -7.0), rtol=1e-6)
    np.testing.assert_allclose(dist.coeffs.numpy(), np.tanh(raw_coeffs), rtol=1e-6)
    single = DiscretizedLogisticMixture.from_params(np.zeros([4, 9], np.float32), num_channels=1)
    assert single.coeffs is None and single.num_components == 3 and single.event_shape == [1]


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(logits=np.zeros([2, 4]), locs=np.zeros([2, 5, 3]), log_scales=np.zeros([2, 5, 3])), "Inconsistent"),
    (dict(logits=np.zeros([4]), locs=np.zeros([4, 3]), log_scales=np.zeros([4, 2])), "Inconsistent"),
    (dict(logits=np.zeros([4]), locs=np.zeros([4, 3]), log_scales=np.zeros([4, 3]), coeffs=np.zeros([4, 2])),
     "coeffs"),
    (dict(logits=np.zeros([2, 4]), locs=np.zeros([3, 4, 3]), log_scales=np.zeros([4, 3])), "do not broadcast"),
    (dict(logits=np.zeros([4]), locs=np.zeros([3]), log_scales=np.zeros([4, 3])), "`locs` must have rank"),
    (dict(logits=np.zeros([4]), locs=np.zeros([4, 3]), log_scales=np.zeros([4, 3]), num_bins=1), "`num_bins`"),
    (dict(logits=np.zeros([4]), locs=np.zeros([4, 3]), log_scales=np.zeros([4, 3]), num_bins=2.5), "`num_bins`"),
])
def test_inconsistent_parameters_are_rejected_by_name(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        DiscretizedLogisticMixture(**kwargs)


def test_from_params_rejects_a_width_that_is_not_a_multiple():
    with pytest.raises(ValueError, match=r"`params`.*multiple of .* = 10 .*e\.g\. 100"):
        DiscretizedLogisticMixture.from_params(np.zeros([2, 99], np.float32))


def test_log_prob_compiles_with_xla():
    params = random_params(14, batch=(2, 8, 8))
    x = np.random.default_rng(15).integers(0, 256, size=(2, 8, 8, 3)).astype(np.float32)
    compiled = tf.function(lambda t: DiscretizedLogisticMixture(**params).log_prob(t), jit_compile=True)
    np.testing.assert_allclose(compiled(x).numpy(), DiscretizedLogisticMixture(**params).log_prob(x).numpy(),
                               rtol=1e-5)
