"""gaussian_dropout_mi_bound (Theorem 1, eq. 5) against independent references.

The true I(X; Y) for Y = X * eps, eps ~ N(1, sigma^2), is computed here by numerical integration, with no code in
common with the library: for discrete X as sum_i pi_i KL(p(y|x_i) || p(y)) with scipy quadrature, for X uniform on
[1, 3] as h(Y) - h(Y|X) with p(y) from Gauss-Legendre quadrature over x.
"""

import math

import numpy as np
import pytest
import tensorflow as tf
from scipy import integrate, special, stats

from gd_bottleneck import gaussian_dropout_mi_bound

RATES = [0.02, 0.1, 0.3, 0.5, 0.8]


def sigma_of(rate):
    return math.sqrt(rate / (1.0 - rate))


def bound(x, rate, **kwargs):
    return gaussian_dropout_mi_bound(np.asarray(x, np.float64), rate, **kwargs).numpy()


def eq5_population(mean, variance, mean_log_x2, rate):
    """Eq. (5) written out from the paper for given population moments of X."""
    return 0.5 * (math.log(variance + mean**2 + variance / sigma_of(rate) ** 2) - mean_log_x2)


def discrete_mutual_information(support, probs, rate):
    """I(X; Y) for discrete X (atom at 0 allowed) by quadrature, in nats."""
    support, probs, sigma = np.asarray(support, float), np.asarray(probs, float), sigma_of(rate)
    nonzero = support != 0
    pi0 = probs[~nonzero].sum()
    xs, ps = support[nonzero], probs[nonzero]

    def log_density_of_continuous_part(y):  # p(y) for y != 0; the atom at 0 has no density there
        return special.logsumexp(stats.norm.logpdf(y, xs, np.abs(xs) * sigma), b=ps)

    info = -pi0 * math.log(pi0) if pi0 > 0 else 0.0  # KL(delta_0 || p_Y) weighted by pi0
    for x, p in zip(xs, ps):
        sd = abs(x) * sigma
        integrand = lambda y: stats.norm.pdf(y, x, sd) * (stats.norm.logpdf(y, x, sd)
                                                          - log_density_of_continuous_part(y))
        others = sorted(set(xs.tolist()) - {x})
        value, _ = integrate.quad(integrand, x - 40 * sd, x + 40 * sd, points=[o for o in others
                                                                          if x - 40 * sd < o < x + 40 * sd] or None,
                                  limit=400, epsabs=1e-11, epsrel=1e-10)
        info += p * value
    return info


def uniform_mutual_information(low, high, rate, nodes=600):
    """I(X; Y) for X ~ U[low, high] (0 < low): h(Y) by trapezoid over y, p(y) by Gauss-Legendre over x."""
    sigma = sigma_of(rate)
    u, w = np.polynomial.legendre.leggauss(nodes)
    x = 0.5 * (high - low) * u + 0.5 * (high + low)
    wx = 0.5 * w  # weights of the density 1/(high-low) times the Jacobian (high-low)/2
    y = np.linspace(low - 12 * high * sigma, high + 12 * high * sigma, 40001)
    density = (wx[None, :] * stats.norm.pdf(y[:, None], x[None, :], x[None, :] * sigma)).sum(axis=1)
    entropy_y = -np.trapezoid(special.xlogy(density, density), y)
    mean_log_x = (high * math.log(high) - high - low * math.log(low) + low) / (high - low)
    entropy_y_given_x = 0.5 * math.log(2 * math.pi * math.e * sigma**2) + mean_log_x
    return entropy_y - entropy_y_given_x, mean_log_x


def test_numerical_reference_is_itself_right():
    # Sanity of the oracle: for X constant, I = 0; for X uniform on {1, -1} with tiny noise, I -> log 2.
    assert discrete_mutual_information([2.0], [1.0], 0.3) == pytest.approx(0.0, abs=1e-9)
    assert discrete_mutual_information([1.0, -1.0], [0.5, 0.5], 1e-4) == pytest.approx(math.log(2), abs=1e-6)


@pytest.mark.parametrize("rate", RATES)
def test_discrete_input_bound_equals_eq5_and_exceeds_the_true_information(rate):
    support, counts = np.array([0.5, 2.0, -3.0]), np.array([1, 2, 1])
    samples = np.repeat(support, counts)  # the empirical distribution *is* the population here
    probs = counts / counts.sum()
    mean, variance = (probs * support).sum(), (probs * (support - (probs * support).sum()) ** 2).sum()
    expected = eq5_population(mean, variance, (probs * np.log(support**2)).sum(), rate)
    result = bound(samples, rate)
    assert result == pytest.approx(expected, rel=1e-12)
    true_information = discrete_mutual_information(support, probs, rate)
    assert 0.0 < true_information <= result
    assert true_information <= math.log(3) + 1e-9  # I(X;Y) <= H(X): the oracle is a mutual information


@pytest.mark.parametrize("rate", [0.05, 0.3, 0.7])
def test_continuous_input_bound_exceeds_the_true_information(rate):
    quantiles = (np.arange(200_000) + 0.5) / 200_000
    samples = 1.0 + 2.0 * quantiles  # X ~ U[1, 3] through its quantile function
    true_information, mean_log_x = uniform_mutual_information(1.0, 3.0, rate)
    expected = eq5_population(2.0, 1.0 / 3.0, 2 * mean_log_x, rate)
    result = bound(samples, rate)
    assert result == pytest.approx(expected, rel=1e-6)
    assert 0.0 < true_information <= result


@pytest.mark.parametrize("scale", [1e-30, 1e-3, -7.0, 1e4, 1e30])
def test_bound_is_invariant_to_rescaling_the_input(scale):
    x = np.random.default_rng(0).lognormal(size=(5000, 4)) * np.array([1.0, -1.0, 3.0, 0.1])
    np.testing.assert_allclose(bound(scale * x, 0.2), bound(x, 0.2), rtol=1e-12)


def test_float32_inputs_of_extreme_magnitude_do_not_overflow():
    x = np.random.default_rng(1).normal(size=(4000, 3)).astype(np.float32)
    reference = gaussian_dropout_mi_bound(x, 0.3).numpy()
    for scale in (1e-30, 1e30):
        np.testing.assert_allclose(gaussian_dropout_mi_bound(x * np.float32(scale), 0.3).numpy(), reference,
                                   rtol=1e-5)
    assert reference.dtype == np.float32 and np.all(np.isfinite(reference))


def test_bound_decreases_strictly_with_the_rate():
    x = np.random.default_rng(2).normal(loc=1.0, size=(3000, 3))
    values = np.stack([bound(x, rate) for rate in np.linspace(0.01, 0.99, 50)])
    assert np.all(np.diff(values, axis=0) < 0)


def test_rate_zero_is_unbounded_unless_the_input_is_constant():
    assert np.all(np.isinf(bound(np.random.default_rng(3).normal(size=(100, 2)), 0.0)))
    assert bound(np.full([10], 4.0), 0.0) == 0.0


# ---------------------------------------------------------------- mass at zero

def test_atom_at_zero_diverges_literally_and_splits_to_a_tight_finite_bound():
    x = np.array([0.0, 1.0] * 50)  # X uniform on {0, 1}: I(X; Y) = H(X) = log 2 for every rate
    assert np.isinf(bound(x, 0.3, zero_mass="inf"))
    assert bound(x, 0.3) == pytest.approx(math.log(2), rel=1e-12)
    assert discrete_mutual_information([0.0, 1.0], [0.5, 0.5], 0.3) == pytest.approx(math.log(2), rel=1e-9)


@pytest.mark.parametrize("rate", [0.05, 0.5])
def test_split_bound_with_an_atom_exceeds_the_true_information(rate):
    support, probs = np.array([0.0, 1.0, 2.5, -1.5]), np.array([0.25, 0.25, 0.25, 0.25])
    result = bound(support, rate)
    true_information = discrete_mutual_information(support, probs, rate)
    assert true_information <= result < np.inf
    nonzero = support[1:]
    pi0 = 0.25
    split = -(pi0 * math.log(pi0) + (1 - pi0) * math.log(1 - pi0)) + (1 - pi0) * eq5_population(
        nonzero.mean(), nonzero.var(), np.log(nonzero**2).mean(), rate)
    assert result == pytest.approx(split, rel=1e-12)


def test_all_zero_feature_carries_no_information_and_other_features_are_unaffected():
    x = np.stack([np.zeros(20), np.linspace(1.0, 2.0, 20)], axis=1)
    result = bound(x, 0.2)
    assert result[0] == 0.0
    assert result[1] == pytest.approx(bound(x[:, 1], 0.2), rel=1e-12)


# ---------------------------------------------------------------- shapes, graphs, errors

def test_axis_selects_the_sample_axes():
    x = np.random.default_rng(4).normal(size=(3, 50, 4))
    assert bound(x, 0.1, axis=1).shape == (3, 4)
    np.testing.assert_allclose(bound(x, 0.1, axis=-2), bound(np.moveaxis(x, 1, 0), 0.1, axis=0), rtol=1e-12)
    flat = bound(x.transpose(0, 2, 1).reshape(-1, 1), 0.1)
    np.testing.assert_allclose(bound(x, 0.1, axis=(0, 1, 2)), flat[0], rtol=1e-12)


def test_works_inside_a_compiled_graph():
    x = tf.constant(np.random.default_rng(5).normal(size=(64, 10)), tf.float32)
    compiled = tf.function(lambda t: gaussian_dropout_mi_bound(t, 0.25), jit_compile=True)
    np.testing.assert_allclose(compiled(x).numpy(), gaussian_dropout_mi_bound(x, 0.25).numpy(), rtol=1e-5)


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(rate=1.0), r"`rate`.*\[0, 1\)"), (dict(rate=-0.5), r"`rate`"), (dict(rate=0.1, zero_mass="drop"),
                                                                            r"`zero_mass`"),
    (dict(rate=0.1, axis=3), r"`axis`"), (dict(rate=0.1, axis=(0, 0)), r"`axis`")])
def test_bad_arguments_are_named(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        gaussian_dropout_mi_bound(np.ones([5, 2]), **kwargs)


def test_non_finite_or_empty_samples_are_rejected():
    with pytest.raises(tf.errors.InvalidArgumentError, match="must be finite"):
        gaussian_dropout_mi_bound(np.array([1.0, np.nan]), 0.1)
    with pytest.raises(ValueError, match="at least one sample"):
        gaussian_dropout_mi_bound(np.ones([0, 3]), 0.1)
