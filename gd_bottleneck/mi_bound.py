"""The paper's Theorem 1 (appendix A): an upper bound on I(X; Y) through a Gaussian dropout layer, eq. (5)."""

import math

import tensorflow as tf

from gd_bottleneck.validation import check_rate


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
        raise ValueError(f"Argument `axis` must be an int or tuple of ints in [-{rank}, {rank}). "
                         f"Received: axis={axis!r}")
    normalized = sorted({a % rank for a in axes})
    if len(normalized) != len(axes):
        raise ValueError(f"Argument `axis` repeats an axis. Received: axis={axis!r}")
    return normalized
