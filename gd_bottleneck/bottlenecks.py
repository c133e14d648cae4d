"""The paper's two information-bottleneck layers and its Theorem 1 (Rey & Mnih, sections 2 and appendix A).

* :class:`GaussianDropoutBottleneck`: multiplicative noise ``y = x * eps``, ``eps ~ N(1, sigma^2)``, no extra loss.
* :class:`VariationalBottleneck`: DVIB-style learned Gaussian ``N(mean(x), scale(x)^2)`` with a
  ``beta * KL(. || N(0, I))`` penalty.
* :func:`gaussian_dropout_mi_bound`: the upper bound of eq. (5) on I(X; Y) through a Gaussian dropout layer.

Both layers are the identity on their "signal" at test time: Gaussian dropout returns ``x``, the variational
bottleneck returns its mean, as in the paper's experiments (appendix B).
"""

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from gd_bottleneck.noise import SeededNoiseLayer
from gd_bottleneck.validation import check_int, check_nonnegative, check_rate

tfd = tfp.distributions


def dropout_stddev(rate):
    """Gaussian dropout's noise standard deviation ``sigma(p) = sqrt(p / (1 - p))`` (paper, section 4)."""
    rate = check_rate(rate)
    return math.sqrt(rate / (1.0 - rate))


@keras.saving.register_keras_serializable(package="gd_bottleneck")
class GaussianDropoutBottleneck(SeededNoiseLayer):
    """Gaussian dropout used as an information bottleneck: ``y = x * eps``, ``eps ~ N(1, sigma^2)``.

    ``sigma = sqrt(rate / (1 - rate))``, so ``rate=0.5`` gives ``sigma=1``. The noise has no learnable parameters and
    adds no loss term: by Theorem 1 it bounds I(x; y) on its own (see :func:`gaussian_dropout_mi_bound`).

    Args:
        rate: dropout rate ``p`` in ``[0, 1)``; ``0`` is the identity.
        seed: int in ``[0, 2**31)`` or ``None``; see :class:`~gd_bottleneck.noise.SeededNoiseLayer` for how noise is
            derived, checkpointed and split across replicas.

    Call arguments:
        x: float tensor of any shape ``[B, ...]``; noise is drawn independently per element.
        training: noise is applied only when ``True``; otherwise (and whenever ``rate == 0``) ``y`` is ``x``
            itself, bit for bit.
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = check_rate(rate)
        self.stddev = dropout_stddev(self.rate)
        self.supports_masking = True

    def call(self, x, training=None):
        if not training or self.rate == 0.0:
            return x
        return x * (1.0 + self.stddev * self.standard_normal(x))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


@keras.saving.register_keras_serializable(package="gd_bottleneck")
class VariationalBottleneck(SeededNoiseLayer):
    """DVIB-style variational bottleneck (paper appendix A; Alemi et al. 2016).

    Two dense heads map the input's last axis to the mean and scale of a diagonal Gaussian over ``units``
    dimensions: ``scale = softplus(raw - 5) + 1e-5`` (DVIB's ``softplus(rho - 5)``, so the noise starts small and the
    layer starts nearly open; the floor keeps ``log(scale)`` finite). In training the layer returns the
    reparameterized sample ``mean + scale * n``, ``n ~ N(0, I)``.

    In every mode it adds the penalty ``beta * KL(N(mean, scale) || N(0, I))`` with ``add_loss``, the KL summed
    over all non-batch axes and averaged over the batch (nats per example): the penalty is a property of the
    noise distribution, so ``evaluate`` reports the same objective that ``fit`` optimises. At inference the layer
    returns the mean and injects no noise.

    Args:
        units: output dimension per position, ``>= 1``.
        beta: weight of the KL penalty, finite and ``>= 0``.
        seed: int in ``[0, 2**31)`` or ``None``.

    Call arguments:
        x: float tensor ``[B, ..., D]``. Output: ``[B, ..., units]``.
        training: sample when ``True``, return the mean otherwise.
    """

    SCALE_SHIFT = 5.0
    MIN_SCALE = 1e-5

    def __init__(self, units, beta, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.units = check_int(units, "units", minimum=1)
        self.beta = check_nonnegative(beta, "beta")
        self.mean_head = keras.layers.Dense(self.units, name="mean_head")
        self.scale_head = keras.layers.Dense(self.units, name="scale_head")

    def build(self, input_shape):
        self.mean_head.build(input_shape)
        self.scale_head.build(input_shape)

    def noise_distribution(self, x):
        """The ``tfd.Normal`` (batch shape ``[B, ..., units]``) that the layer samples from in training."""
        mean = self.mean_head(x)
        scale = tf.math.softplus(self.scale_head(x) - self.SCALE_SHIFT) + self.MIN_SCALE
        return tfd.Normal(loc=mean, scale=scale)

    def kl_per_example(self, distribution):
        """``KL(distribution || N(0, I))`` summed over the non-batch axes: ``[B]``, nats, computed in float32+."""
        mean = tf.cast(distribution.loc, tf.float32) if distribution.dtype == tf.float16 else distribution.loc
        scale = tf.cast(distribution.scale, mean.dtype)
        kl = 0.5 * (tf.square(mean) + tf.square(scale) - 1.0) - tf.math.log(scale)
        return tf.reduce_sum(tf.reshape(kl, [tf.shape(kl)[0], -1]), axis=1)

    def outputs_and_kl(self, x, training=None):
        """``(output, KL per example [B] in nats)`` without registering the penalty.

        For models that weigh and report the KL themselves (``HybridVAE``); ``call`` is this plus ``add_loss``.
        """
        distribution = self.noise_distribution(x)
        kl = self.kl_per_example(distribution)
        if not training:
            return distribution.loc, kl
        return distribution.loc + distribution.scale * self.standard_normal(distribution.loc), kl

    def call(self, x, training=None):
        outputs, kl = self.outputs_and_kl(x, training)
        self.add_loss(self.beta * tf.reduce_mean(kl))
        return outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "beta": self.beta}


def gaussian_dropout_mi_bound(x, rate, axis=0, zero_mass="split"):
    """Theorem 1: an upper bound on I(X; Y), in nats, for ``Y = X * eps``, ``eps ~ N(1, sigma^2)``.

    Eq. (5): ``I(X; Y) <= 1/2 E[log((V + m^2 + V / sigma^2) / X^2)]`` with ``m``, ``V`` the mean and variance of X.
    The expectations are taken over the empirical distribution of the samples along ``axis`` (plug-in moments), so
    the result is the bound for that distribution, one value per remaining position ("per feature"). Rescaling X
    leaves it unchanged; the computation also rescales each feature by its largest magnitude first, so very large or
    small inputs neither overflow nor lose precision.

    **Mass at zero.** If X is 0 with probability ``pi0 > 0``, ``E[log X^2] = -inf`` and eq. (5) is ``+inf``: the
    proof's conditional entropy ``h(Y | X)`` is ``-inf`` on the atom, although I(X; Y) itself is finite (for X
    uniform on {0, 1}, I = log 2). ``zero_mass`` chooses what to return for such features:

    * ``"split"`` (default): the finite bound ``H_b(pi0) + (1 - pi0) * bound(X | X != 0)``. It is exact reasoning,
      not a heuristic: ``Y = 0`` iff ``X = 0`` (almost surely), so ``I(X; Y) = H(1[X=0]) + (1 - pi0) I(X; Y | X != 0)``,
      and eq. (5) bounds the last term. With no zeros it equals eq. (5); if X is always 0 it is 0.
    * ``"inf"``: eq. (5) literally, ``+inf`` for every feature with a zero sample.

    Args:
        x: real samples of X, any shape; integers are cast to float32. Must be finite and non-empty along ``axis``.
        rate: dropout rate in ``[0, 1)``; ``sigma^2 = rate / (1 - rate)``. ``rate=0`` (no noise) gives the
            limit: ``+inf`` unless the nonzero samples are all equal.
        axis: int or tuple of ints, the sample axes.
        zero_mass: ``"split"`` or ``"inf"``, see above.

    Returns:
        Tensor with ``axis`` removed from the shape of ``x``: the bound in nats per feature.
    """
    rate = check_rate(rate)
    if zero_mass not in ("split", "inf"):
        raise ValueError(f"Argument `zero_mass` must be 'split' or 'inf'. Received: zero_mass={zero_mass!r}")
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
        x = tf.cast(x, tf.float32)
    axes = _normalized_axes(axis, x.shape.rank)
    tf.debugging.assert_all_finite(x, "Argument `x` of gaussian_dropout_mi_bound must be finite (no NaN/inf)")
    if any(x.shape[a] == 0 for a in axes):
        raise ValueError(f"Argument `x` needs at least one sample along axis={axis}. Received shape {x.shape}.")

    x = x / tf.reduce_max(tf.abs(x), axis=axes, keepdims=True)  # scale invariance, used for range safety
    # An all-zero feature became 0/0 = NaN above; NaN != 0 but is not finite, so it is excluded here.
    nonzero = tf.logical_and(tf.math.not_equal(x, 0.0), tf.math.is_finite(x))
    weight = tf.cast(nonzero, x.dtype)
    count = tf.reduce_sum(weight, axis=axes, keepdims=True)
    safe_count = tf.maximum(count, 1.0)
    safe_x = tf.where(nonzero, x, tf.ones_like(x))
    mean = tf.reduce_sum(weight * safe_x, axis=axes, keepdims=True) / safe_count
    variance = tf.reduce_sum(weight * tf.square(safe_x - mean), axis=axes, keepdims=True) / safe_count
    mean_log_x2 = tf.reduce_sum(weight * 2.0 * tf.math.log(tf.abs(safe_x)), axis=axes, keepdims=True) / safe_count
    if rate == 0.0:  # the sigma -> 0 limit: unbounded unless the nonzero part of X is constant
        noise_term = tf.where(variance > 0, tf.constant(math.inf, x.dtype), variance)
    else:
        noise_term = variance * ((1.0 - rate) / rate)
    bound_nonzero = 0.5 * (tf.math.log(variance + tf.square(mean) + noise_term) - mean_log_x2)

    pi0 = 1.0 - count / tf.cast(tf.size(x) // tf.size(count), x.dtype)
    if zero_mass == "inf":
        result = tf.where(pi0 > 0, tf.constant(math.inf, x.dtype), bound_nonzero)
    else:
        binary_entropy = -(tf.math.xlogy(pi0, pi0) + tf.math.xlogy(1.0 - pi0, 1.0 - pi0))
        result = binary_entropy + tf.where(count > 0, (1.0 - pi0) * bound_nonzero, tf.zeros_like(pi0))
    return tf.squeeze(result, axis=axes)


def _normalized_axes(axis, rank):
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    if not axes or any(not isinstance(a, int) or not -rank <= a < rank for a in axes):
        raise ValueError(f"Argument `axis` must be an int or tuple of ints in [-{rank}, {rank}). Received: axis={axis!r}")
    normalized = sorted({a % rank for a in axes})
    if len(normalized) != len(axes):
        raise ValueError(f"Argument `axis` repeats an axis. Received: axis={axis!r}")
    return normalized
