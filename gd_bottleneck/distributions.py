"""The PixelCNN++ likelihood: a mixture of discretized logistics with conditional colour channels.

Salimans et al. 2017, eq. (2) and section 2.2. A pixel has ``C`` channels taking integer values ``0..num_bins-1``.
Inside the distribution value ``k`` is rescaled to ``s(k) = 2k / (num_bins - 1) - 1`` in [-1, 1]; bin ``k`` is the
interval ``[s(k) - h, s(k) + h]`` with half-width ``h = 1 / (num_bins - 1)``, except that the edge bins absorb the
tails: value 0 takes ``(-inf, s(0) + h]`` and the top value takes ``[s(top) - h, inf)``. With ``K`` components::

    p(x) = sum_k softmax(logits)_k  prod_c  P_logistic(bin(x_c) | mu_kc(x_<c), exp(log_scale_kc))
    mu_kc(x_<c) = loc_kc + sum_{j<c} coeff_k,(j,c) * s(x_j)          (PixelCNN++ colour conditioning)

so a component is a joint distribution over the channels (one component is chosen per pixel, not per channel).
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import (
    dtype_util,
    parameter_properties,
    reparameterization,
    samplers,
    tensor_util,
)

from gd_bottleneck.validation import check_int

tfd = tfp.distributions

LOG_SCALE_FLOOR = -7.0  # from_params clamps log-scales here, as PixelCNN++ does (bins are 2/255 ~ e^-4.8 wide)
_SMALL_WIDTH = 1e-2  # below this bin width (in logistic units) log(1 - e^-d) uses its series around d = 0
_MAX_LOG_WIDTH = 30.0  # log(1 - e^-d) is exactly 0 in float64 long before d = e^30


def conditioning_pairs(num_channels):
    """The ``(source, target)`` channel pairs in coefficient order: by target, then source ((0,1), (0,2), (1,2))."""
    return [(source, target) for target in range(num_channels) for source in range(target)]


def gumbel_noise(uniforms):
    """``-log(-log(u))``: standard Gumbel noise from uniforms in (0, 1) (the Gumbel-max trick's)."""
    return -tf.math.log(-tf.math.log(uniforms))


def logistic_noise(uniforms):
    """``log(u) - log(1 - u)``: standard logistic noise from uniforms in (0, 1) (the inverse logistic CDF)."""
    return tf.math.log(uniforms) - tf.math.log1p(-uniforms)


def _log1mexp(width, log_width):
    """``log(1 - exp(-d))`` for ``d > 0``, accurate at both ends and with finite gradients in every branch.

    ``log_width = log(d)`` is passed separately because it is known analytically: when ``d`` underflows (a huge
    scale), the series branch still returns ``log(d) - d/2`` instead of ``log(0)``.
    """
    small = width < _SMALL_WIDTH
    tiny_width = tf.where(small, width, tf.zeros_like(width))
    series = log_width - 0.5 * tiny_width + tf.square(tiny_width) / 24.0
    mid_width = tf.clip_by_value(width, _SMALL_WIDTH, np.log(2.0))
    near = tf.math.log(-tf.math.expm1(-mid_width))
    far = tf.math.log1p(-tf.exp(-tf.maximum(width, np.log(2.0))))
    return tf.where(small, series, tf.where(width < np.log(2.0), near, far))


class DiscretizedLogisticMixture(tfd.Distribution):
    """Mixture of discretized logistics over ``C`` colour channels with PixelCNN++ channel conditioning.

    Args:
        logits: ``[..., K]`` unnormalized mixture log-weights.
        locs: ``[..., K, C]`` component locations in the rescaled space (value k <-> ``2k/(num_bins-1) - 1``).
        log_scales: ``[..., K, C]`` natural logs of the logistic scales in that space. Any real value is accepted;
            ``log_prob`` and its gradients stay finite for ``log_scales >= -80`` in float32 (``-700`` in float64).
        coeffs: ``[..., K, C(C-1)/2]`` conditioning coefficients in :func:`conditioning_pairs` order (for C=3:
            r->g, r->b, g->b), or ``None`` for channels independent given the component. Used as given: a network
            output needs squashing first, which :meth:`from_params` does.
        num_bins: number of values per channel, ``>= 2`` (256 for 8-bit images).

    The batch shape is the broadcast of the parameters' batch shapes; ``event_shape == [C]``. Support: integers
    ``0..num_bins-1`` stored as floats; ``log_prob`` is ``-inf`` anywhere else (or raises with
    ``validate_args=True``).

    Example::

        params = network(images)                                     # [B, H, W, 100]
        dist = DiscretizedLogisticMixture.from_params(params)        # batch [B, H, W], event [3], K = 10
        nats = -tf.reduce_sum(dist.log_prob(images), axis=[1, 2])    # images: [B, H, W, 3] values 0..255
        pixels = dist.sample(seed=(1, 2))                            # [B, H, W, 3] integer-valued floats
    """

    def __init__(self, logits, locs, log_scales, coeffs=None, num_bins=256, validate_args=False,
                 allow_nan_stats=True, name="DiscretizedLogisticMixture"):
        parameters = dict(locals())
        self._num_bins = check_int(num_bins, "num_bins", minimum=2)
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([logits, locs, log_scales, coeffs], dtype_hint=tf.float32)
            self._logits = tensor_util.convert_nonref_to_tensor(logits, dtype=dtype, name="logits")
            self._locs = tensor_util.convert_nonref_to_tensor(locs, dtype=dtype, name="locs")
            self._log_scales = tensor_util.convert_nonref_to_tensor(log_scales, dtype=dtype, name="log_scales")
            self._coeffs = (None if coeffs is None
                            else tensor_util.convert_nonref_to_tensor(coeffs, dtype=dtype, name="coeffs"))
            self._num_components, self._num_channels = _check_static_shapes(
                self._logits, self._locs, self._log_scales, self._coeffs)
            super().__init__(dtype=dtype, reparameterization_type=reparameterization.NOT_REPARAMETERIZED,
                             validate_args=validate_args, allow_nan_stats=allow_nan_stats,
                             parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict(
            logits=parameter_properties.ParameterProperties(event_ndims=1),
            locs=parameter_properties.ParameterProperties(event_ndims=2),
            log_scales=parameter_properties.ParameterProperties(event_ndims=2),
            coeffs=parameter_properties.ParameterProperties(event_ndims=2))

    @classmethod
    def num_params(cls, num_components, num_channels=3):
        """Size of the flat parameter vector :meth:`from_params` reads: ``K * (1 + 2C + C(C-1)/2)``."""
        return num_components * (1 + 2 * num_channels + num_channels * (num_channels - 1) // 2)

    FLAT_LOG_SCALE = float(np.log(0.35))  # the logistic scale closest to uniform over [-1, 1] (8.28 bits/dim)

    @classmethod
    def flat_params(cls, num_components, num_channels=3):
        """A flat parameter vector (for :meth:`from_params`) whose distribution is as close to uniform as a logistic
        gets: every component centred at 0 with scale 0.35, no conditioning. Uniformly random pixels score 8.28
        bits/dim under it (8.00 is exactly uniform). Networks use it as their output bias so that training
        starts from "knows nothing" rather than from an arbitrary, confidently wrong distribution."""
        k, c = num_components, num_channels
        return np.concatenate([np.zeros(k), np.zeros(k * c), np.full(k * c, cls.FLAT_LOG_SCALE),
                               np.zeros(k * c * (c - 1) // 2)]).astype(np.float32)

    @classmethod
    def from_params(cls, params, num_channels=3, num_bins=256, **kwargs):
        """Builds the distribution from a network's flat output ``params [..., K * (1 + 2C + C(C-1)/2)]``.

        Layout along the last axis: ``[logits (K) | locs (K*C) | log_scales (K*C) | coeffs (K*C(C-1)/2)]``, the
        per-component blocks component-major (index ``k * C + c``). Squashing: ``log_scales`` are floored at
        ``LOG_SCALE_FLOOR = -7`` and ``coeffs`` pass through ``tanh``, as in PixelCNN++; logits and locs are raw.
        """
        num_channels = check_int(num_channels, "num_channels", minimum=1)
        params = tf.convert_to_tensor(params)
        width = params.shape[-1] if params.shape.rank else None
        per_component = cls.num_params(1, num_channels)
        if width is None or width % per_component:
            raise ValueError(
                f"Argument `params` must have a static last axis that is a multiple of 1 + 2C + C(C-1)/2 = "
                f"{per_component} (C=num_channels={num_channels}), e.g. {cls.num_params(10, num_channels)} for 10 "
                f"components. Received shape {params.shape}.")
        k, c, p = width // per_component, num_channels, num_channels * (num_channels - 1) // 2
        logits, locs, log_scales, coeffs = tf.split(params, [k, k * c, k * c, k * p], axis=-1)
        leading = params.shape[:-1]
        if sum(size is None for size in leading) <= 1:  # a static target shape: no shape ops in the graph
            to_components = lambda t, n: tf.reshape(t, [-1 if d is None else d for d in leading] + [k, n])  # noqa: E731
        else:
            batch = tf.shape(params)[:-1]
            to_components = lambda t, n: tf.reshape(t, tf.concat([batch, [k, n]], axis=0))  # noqa: E731
        return cls(logits=logits,
                   locs=to_components(locs, c),
                   log_scales=tf.maximum(to_components(log_scales, c), LOG_SCALE_FLOOR),
                   coeffs=tf.tanh(to_components(coeffs, p)) if p else None,
                   num_bins=num_bins, **kwargs)

    @property
    def logits(self):
        return self._logits

    @property
    def locs(self):
        return self._locs

    @property
    def log_scales(self):
        return self._log_scales

    @property
    def coeffs(self):
        return self._coeffs

    @property
    def num_bins(self):
        return self._num_bins

    @property
    def num_components(self):
        return self._num_components

    def _event_shape(self):
        return tf.TensorShape([self._num_channels])

    def _event_shape_tensor(self):
        return tf.constant([self._num_channels], tf.int32)

    def _rescale(self, x):
        """Pixel value k -> ``2k / (num_bins - 1) - 1``."""
        return x * (2.0 / (self._num_bins - 1)) - 1.0

    def _conditioned_locs(self, locs, coeffs, rescaled):
        """``mu_kc = loc_kc + sum_{j<c} coeff_k,(j,c) * rescaled_j`` for ``locs [..., K, C]``, ``rescaled [..., C]``."""
        if coeffs is None or self._num_channels == 1:
            return locs
        pairs = conditioning_pairs(self._num_channels)
        sources = tf.gather(rescaled, [s for s, _ in pairs], axis=-1)[..., tf.newaxis, :]  # [..., 1, P]
        to_target = np.zeros([len(pairs), self._num_channels], dtype=dtype_util.as_numpy_dtype(self.dtype))
        for index, (_, target) in enumerate(pairs):
            to_target[index, target] = 1.0
        return locs + tf.einsum("...kp,pc->...kc", coeffs * sources, to_target)

    def _log_prob(self, x):
        x = tf.convert_to_tensor(x, self.dtype)
        top = float(self._num_bins - 1)
        rescaled = self._rescale(x)
        half_width = 1.0 / top
        means = self._conditioned_locs(self._locs, self._coeffs, rescaled)  # [..., K, C]
        log_scales = tf.convert_to_tensor(self._log_scales)
        inv_scale = tf.exp(-log_scales)
        centered = rescaled[..., tf.newaxis, :] - means
        upper = inv_scale * (centered + half_width)  # standardized right edge of the bin
        lower = inv_scale * (centered - half_width)  # standardized left edge
        log_cdf_upper = -tf.math.softplus(-upper)  # log sigma(upper): the whole left tail, for value 0
        log_sf_lower = -tf.math.softplus(lower)  # log (1 - sigma(lower)): the right tail, for the top value
        # sigma(a) - sigma(b) = sigma(a) (1 - sigma(b)) (1 - e^-(a-b)); here a - b = 2h / scale exactly.
        log_width = tf.minimum(np.log(2.0 * half_width) - log_scales, _MAX_LOG_WIDTH)
        log_bin = log_cdf_upper + log_sf_lower + _log1mexp(tf.exp(log_width), log_width)
        x_k = x[..., tf.newaxis, :]
        per_channel = tf.where(x_k <= 0.0, log_cdf_upper, tf.where(x_k >= top, log_sf_lower, log_bin))
        log_weights = tf.nn.log_softmax(self._logits, axis=-1)
        log_prob = tf.reduce_logsumexp(log_weights + tf.reduce_sum(per_channel, axis=-1), axis=-1)
        in_support = tf.reduce_all((x >= 0.0) & (x <= top) & tf.equal(x, tf.round(x)), axis=-1)
        return tf.where(in_support, log_prob, tf.constant(-np.inf, self.dtype))

    def _sample_n(self, n, seed=None):
        component_seed, channel_seed = samplers.split_seed(seed, n=2, salt="DiscretizedLogisticMixture")
        batch_shape = self.batch_shape_tensor()
        shape = lambda last: tf.concat([[n], batch_shape, [last]], axis=0)
        tiny = np.finfo(dtype_util.as_numpy_dtype(self.dtype)).tiny
        component_uniforms = samplers.uniform(shape(self._num_components), minval=tiny, maxval=1.0,
                                              dtype=self.dtype, seed=component_seed)
        channel_uniforms = samplers.uniform(shape(self._num_channels), minval=tiny, maxval=1.0,
                                            dtype=self.dtype, seed=channel_seed)
        return self.sample_from_uniforms(component_uniforms, channel_uniforms)

    def sample_from_uniforms(self, component_uniforms, channel_uniforms):
        """The deterministic map from uniform noise to a sample, for samplers that manage their own noise.

        ``component_uniforms [..., K]`` choose the component by the Gumbel-max trick; ``channel_uniforms [..., C]``
        draw the channels in order by inverting the logistic CDF, each conditioned on the already drawn (discrete)
        values of the earlier channels, then quantized to the bin that ``log_prob`` assigns it. Uniforms must lie
        in ``(0, 1)``; their leading shape must broadcast with the batch shape. Returns ``[..., C]`` floats with
        integer values in ``0..num_bins-1``, distributed exactly as ``prob`` says.
        """
        return self.sample_from_noise(gumbel_noise(tf.convert_to_tensor(component_uniforms, self.dtype)),
                                      logistic_noise(tf.convert_to_tensor(channel_uniforms, self.dtype)))

    def sample_from_noise(self, gumbel, logistic):
        """:meth:`sample_from_uniforms` from the uniforms already transformed: ``gumbel [..., K]`` =
        :func:`gumbel_noise` of the component uniforms, ``logistic [..., C]`` = :func:`logistic_noise` of the channel
        uniforms. A sampler that draws one pixel at a time transforms all of its uniforms at once, up front, and
        calls this per pixel: the transforms are ops that do not depend on the pixels drawn so far.

        Written with few ops (one unstack per parameter instead of a slice per channel, the scales applied to all
        channels at once), since a pixel-by-pixel sampler pays per op; only the channels' conditioning is serial.
        """
        gumbel = tf.convert_to_tensor(gumbel, self.dtype)
        logistic = tf.convert_to_tensor(logistic, self.dtype)
        chosen = tf.one_hot(tf.argmax(self._logits + gumbel, axis=-1), self._num_components, dtype=self.dtype)
        chosen = chosen[..., tf.newaxis]
        pick = lambda params: tf.reduce_sum(chosen * params, axis=-2)  # noqa: E731  [..., K, n] -> [..., n]
        locs = tf.unstack(pick(self._locs), self._num_channels, axis=-1)
        noise = tf.unstack(tf.exp(pick(self._log_scales)) * logistic, self._num_channels, axis=-1)
        coeffs = [] if self._coeffs is None else tf.unstack(pick(self._coeffs), axis=-1)
        pairs = conditioning_pairs(self._num_channels) if coeffs else []
        top = float(self._num_bins - 1)
        values, rescaled = [], []
        for channel in range(self._num_channels):
            mean = locs[channel]
            for index, (source, target) in enumerate(pairs):
                if target == channel:
                    mean = mean + coeffs[index] * rescaled[source]
            value = tf.clip_by_value(tf.floor((mean + noise[channel] + 1.0) * (top / 2.0) + 0.5), 0.0, top)
            values.append(value)
            rescaled.append(self._rescale(value))
        return tf.stack(values, axis=-1)

    def _sample_control_dependencies(self, x):
        if not self.validate_args:
            return []
        top = float(self._num_bins - 1)
        message = f"DiscretizedLogisticMixture: values must be integers in [0, {self._num_bins - 1}]"
        return [tf.debugging.assert_equal(tf.reduce_all((x >= 0.0) & (x <= top) & tf.equal(x, tf.round(x))),
                                          True, message=message)]


def _check_static_shapes(logits, locs, log_scales, coeffs):
    """Returns (K, C) after checking the parameters agree on them; raises ValueError naming the culprit."""
    def last_dims(tensor, name, rank):
        if tensor.shape.rank is None:
            raise ValueError(f"Argument `{name}` must have a known rank. Received shape {tensor.shape}.")
        if tensor.shape.rank < rank:
            raise ValueError(f"Argument `{name}` must have rank >= {rank}. Received shape {tensor.shape}.")
        return tuple(tensor.shape[-rank:])

    (k,) = last_dims(logits, "logits", 1)
    k_locs, c = last_dims(locs, "locs", 2)
    shapes = {"logits": [k], "locs": [k_locs, c], "log_scales": list(last_dims(log_scales, "log_scales", 2))}
    if coeffs is not None:
        shapes["coeffs"] = list(last_dims(coeffs, "coeffs", 2))
    if None in (k, c) or k_locs != k or shapes["log_scales"] != [k, c] or (
            coeffs is not None and shapes["coeffs"] != [k, c * (c - 1) // 2]):
        expected = "logits [..., K], locs and log_scales [..., K, C], coeffs [..., K, C(C-1)/2]"
        received = ", ".join(f"{name} {list(t.shape)}" for name, t in
                             [("logits", logits), ("locs", locs), ("log_scales", log_scales), ("coeffs", coeffs)]
                             if t is not None)
        raise ValueError(f"Inconsistent mixture parameter shapes: expected {expected} with static K, C >= 1 and K, C "
                         f"equal across arguments. Received: {received}.")
    if k < 1 or c < 1:
        raise ValueError(f"Arguments `logits`/`locs` need K >= 1 components and C >= 1 channels. "
                         f"Received K={k}, C={c}.")
    batch_shapes = [("logits", logits.shape[:-1]), ("locs", locs.shape[:-2]), ("log_scales", log_scales.shape[:-2])]
    if coeffs is not None:
        batch_shapes.append(("coeffs", coeffs.shape[:-2]))
    broadcast = tf.TensorShape([])
    for name, shape in batch_shapes:
        try:
            broadcast = tf.broadcast_static_shape(broadcast, shape)
        except ValueError:
            raise ValueError("The batch shapes of the mixture parameters do not broadcast: "
                             + ", ".join(f"{n} {list(s)}" for n, s in batch_shapes) + ".") from None
    return int(k), int(c)
