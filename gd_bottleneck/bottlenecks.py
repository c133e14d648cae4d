"""The paper's information-bottleneck layers, behind one small contract (Rey & Mnih, section 2, appendix A).

* :class:`GaussianDropoutBottleneck`: multiplicative noise ``y = x * eps``, ``eps ~ N(1, sigma^2)``, no extra loss;
  it reports the Theorem 1 bound (:func:`gaussian_dropout_mi_bound`) as a metric.
* :class:`VariationalBottleneck`: DVIB-style learned Gaussian ``N(mean(x), scale(x)^2)`` with a
  ``beta * KL(. || N(0, I))`` penalty.
* :class:`IdentityBottleneck`: no bottleneck (the baseline), so a model never has to special-case "none".

**The contract** (:class:`Bottleneck`), what a model needs to use any bottleneck without knowing which it is:

* ``transform(x, training) -> (y, penalty)``: the output and the per-example penalty ``[B]`` in nats (``None`` for
  layers whose ``has_penalty`` is False). A model adds ``penalty_weight * penalty`` to its loss and reports the
  penalty under ``penalty_name``.
* ``metrics(x) -> {name: scalar}``: diagnostics of the input batch in nats per position (``metric_names`` lists them).
* ``call(x, training, return_penalty=False)``: ``y``; standalone it registers ``penalty_weight * mean(penalty)`` with
  ``add_loss``, and with ``return_penalty=True`` it returns ``(y, penalty)`` instead (a functional model's node).
* For flags and tuning (gd_bottleneck/bottleneck_registry.py): ``kind`` (the registry name), ``strength_argument``
  (which setting holds its strength: ``dropout_rate``, ``beta`` or none, also the constructor's argument name),
  ``check_strength`` (the one validation of the strength: the constructor's, also what RunConfig calls to refuse a
  run before anything is written) and ``for_units`` (how the registry builds the layer).

Every layer is the identity on its "signal" at test time: Gaussian dropout returns ``x``, the variational
bottleneck returns its mean, as in the paper's experiments (appendix B).
"""

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from gd_bottleneck.backend import require_tensorflow_backend
from gd_bottleneck.mi_bound import gaussian_dropout_mi_bound
from gd_bottleneck.noise import SeededNoiseLayer
from gd_bottleneck.validation import check_int, check_nonnegative, check_rate

require_tensorflow_backend()
tfd = tfp.distributions

__all__ = ["Bottleneck", "GaussianDropoutBottleneck", "IdentityBottleneck", "VariationalBottleneck",
           "dropout_stddev", "gaussian_dropout_mi_bound"]


class Bottleneck:
    """The interface every bottleneck layer implements (a mixin for Keras layers; see the module docstring)."""

    kind = None  # registry name, e.g. "gaussian_dropout"
    label = None  # for plots and reports
    strength_argument = None  # the setting (flag, HybridVAE argument) holding the strength, or None
    strength_range = None  # the accepted values, for error messages
    has_penalty = False
    penalty_name = None  # the penalty's name in reports, e.g. "bottleneck_kl"
    metric_names = ()

    @classmethod
    def check_strength(cls, strength):
        """The validated strength (``ValueError`` naming ``strength_argument`` and the accepted range)."""
        if cls.strength_argument is None:
            return None
        if strength is None:
            raise ValueError(f"Argument `{cls.strength_argument}` is required with bottleneck={cls.kind!r} "
                             f"({cls.strength_range}).")
        return cls._validate_strength(strength)

    @classmethod
    def for_units(cls, units, **settings):
        """The layer for a model whose bottleneck input has ``units`` features per position; ``settings`` are the
        constructor's other arguments (its strength by its ``strength_argument`` name, ``seed``, ``name``), which the
        constructor validates: the one check on the library's road (docs/design.md, "Walks")."""
        return cls(**settings)

    @property
    def penalty_weight(self):
        return 0.0

    def transform(self, x, training=None):
        """``(y, penalty [B] nats or None)``."""
        raise NotImplementedError

    def metrics(self, x):
        """Diagnostics of a batch ``x [..., D]`` in nats per position (summed over the D features)."""
        return {}

    def call(self, x, training=None, return_penalty=False):
        outputs, penalty = self.transform(x, training=training)
        if return_penalty:
            return outputs, penalty
        if penalty is not None:
            self.add_loss(self.penalty_weight * tf.reduce_mean(penalty))
        return outputs

    def compute_output_spec(self, x, training=None, return_penalty=False):
        # Keras' shape inference does not see `return_penalty`; the spec of both call forms is stated here.
        outputs = keras.KerasTensor(self.output_shape_of(tuple(x.shape)), dtype=self.compute_dtype)
        return (outputs, keras.KerasTensor((x.shape[0],), dtype="float32")) if return_penalty else outputs

    def compute_output_shape(self, input_shape):
        return self.output_shape_of(tuple(input_shape))

    def output_shape_of(self, input_shape):
        return input_shape


def dropout_stddev(rate):
    """Gaussian dropout's noise standard deviation ``sigma(p) = sqrt(p / (1 - p))`` (paper, section 4)."""
    return _stddev(check_rate(rate))


def _stddev(rate):
    return math.sqrt(rate / (1.0 - rate))


@keras.saving.register_keras_serializable(package="gd_bottleneck")
class GaussianDropoutBottleneck(Bottleneck, SeededNoiseLayer):
    """Gaussian dropout used as an information bottleneck: ``y = x * eps``, ``eps ~ N(1, sigma^2)``.

    ``sigma = sqrt(p / (1 - p))`` for the dropout rate p, so ``dropout_rate=0.5`` gives ``sigma=1``. The noise has no
    learnable parameters and adds no loss term: by Theorem 1 it bounds I(x; y) on its own; :meth:`metrics` reports
    that bound for a batch.

    Args:
        dropout_rate: the dropout rate ``p`` in ``[0, 1)`` (the flag's and HybridVAE's name too); ``0`` is the
            identity.
        seed: int in ``[0, 2**31)`` or ``None``; see :class:`~gd_bottleneck.noise.SeededNoiseLayer` for how noise is
            derived, checkpointed and split across replicas.

    Call arguments:
        x: float tensor of any shape ``[B, ...]``; noise is drawn independently per element.
        training: noise is applied only when ``True``; otherwise (and whenever ``dropout_rate == 0``) ``y`` is ``x``
            itself, bit for bit.
    """

    kind = "gaussian_dropout"
    label = "Gaussian dropout (GD), rate p"
    strength_argument = "dropout_rate"
    strength_range = "a rate in [0, 1)"
    metric_names = ("mi_bound",)

    def __init__(self, dropout_rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.dropout_rate = self.check_strength(dropout_rate)
        self.stddev = _stddev(self.dropout_rate)  # validated once, just above
        self.supports_masking = True

    @classmethod
    def _validate_strength(cls, strength):
        return check_rate(strength, cls.strength_argument)

    @classmethod
    def from_config(cls, config):
        if "rate" in config:  # files saved before the argument took the flag's name
            config = {**{key: value for key, value in config.items() if key != "rate"}, "dropout_rate": config["rate"]}
        return cls(**config)

    def transform(self, x, training=None):
        if not training or self.dropout_rate == 0.0:
            return x, None
        return x * (1.0 + self.stddev * self.standard_normal(x)), None

    def metrics(self, x):
        """``{"mi_bound": nats}``: Theorem 1's bound on what one position's ``D`` features can pass, summed over the
        features (they get independent noise, so the sum bounds the joint), with the moments estimated over all
        positions of the batch."""
        flat = tf.reshape(x, [-1, x.shape[-1]])
        # A diverging model's v is not finite: report NaN (the trainer's guard stops on the loss) instead of letting
        # the bound's input check stop the step with an error.
        finite = tf.reduce_all(tf.math.is_finite(flat))
        bound = tf.reduce_sum(gaussian_dropout_mi_bound(tf.where(finite, flat, tf.zeros_like(flat)),
                                                           self.dropout_rate))
        return {"mi_bound": tf.where(finite, bound, tf.constant(math.nan, bound.dtype))}

    def get_config(self):
        return {**super().get_config(), "dropout_rate": self.dropout_rate}


@keras.saving.register_keras_serializable(package="gd_bottleneck")
class VariationalBottleneck(Bottleneck, SeededNoiseLayer):
    """DVIB-style variational bottleneck (paper appendix A; Alemi et al. 2016).

    Two dense heads map the input's last axis to the mean and scale of a diagonal Gaussian over ``units``
    dimensions: ``scale = softplus(raw - 5) + 1e-5`` (DVIB's ``softplus(rho - 5)``, so the noise starts small and the
    layer starts nearly open; the floor keeps ``log(scale)`` finite). In training the layer returns the
    reparameterized sample ``mean + scale * n``, ``n ~ N(0, I)``.

    Its penalty, in every mode, is ``KL(N(mean, scale) || N(0, I))`` (``tfd.kl_divergence``) summed over all
    non-batch axes, nats per example; standalone the layer adds ``beta`` times its batch mean with ``add_loss``: the
    penalty is a property of the noise distribution, so ``evaluate`` reports the same objective that ``fit``
    optimises. At inference the layer returns the mean and injects no noise.

    Args:
        units: output dimension per position, ``>= 1``.
        beta: weight of the KL penalty, finite and ``>= 0``.
        seed: int in ``[0, 2**31)`` or ``None``.

    Call arguments:
        x: float tensor ``[B, ..., D]``. Output: ``[B, ..., units]``.
        training: sample when ``True``, return the mean otherwise.
    """

    kind = "variational"
    label = "variational bottleneck (VB), beta"
    strength_argument = "beta"
    strength_range = "a number >= 0"
    has_penalty = True
    penalty_name = "bottleneck_kl"

    SCALE_SHIFT = 5.0
    MIN_SCALE = 1e-5

    def __init__(self, units, beta, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.units = check_int(units, "units", minimum=1)
        self.beta = self.check_strength(beta)
        self.mean_head = keras.layers.Dense(self.units, name="mean_head")
        self.scale_head = keras.layers.Dense(self.units, name="scale_head")

    @classmethod
    def _validate_strength(cls, strength):
        return check_nonnegative(strength, cls.strength_argument)

    @classmethod
    def for_units(cls, units, **settings):
        return cls(units, **settings)

    @property
    def penalty_weight(self):
        return self.beta

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
        if distribution.dtype == tf.float16:
            distribution = tfd.Normal(tf.cast(distribution.loc, tf.float32), tf.cast(distribution.scale, tf.float32))
        prior = tfd.Normal(tf.zeros([], distribution.dtype), tf.ones([], distribution.dtype))
        kl = tfd.kl_divergence(distribution, prior)
        return tf.reduce_sum(tf.reshape(kl, [tf.shape(kl)[0], -1]), axis=1)

    def transform(self, x, training=None):
        distribution = self.noise_distribution(x)
        kl = self.kl_per_example(distribution)
        if not training:
            return distribution.loc, kl
        # The reparameterized sample by hand rather than distribution.sample(seed): the noise must come from this
        # library's replica-consistent, checkpointed stream (gd_bottleneck/noise.py), which tfd's sampler is not.
        return distribution.loc + distribution.scale * self.standard_normal(distribution.loc), kl

    def output_shape_of(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "beta": self.beta}


@keras.saving.register_keras_serializable(package="gd_bottleneck")
class IdentityBottleneck(Bottleneck, keras.layers.Layer):
    """No bottleneck: ``y = x`` in every mode, no penalty, no weights (the baseline of the paper's Figure 2)."""

    kind = "none"
    label = "no bottleneck"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    @classmethod
    def for_units(cls, units, seed=None, **settings):
        return cls(**settings)  # no noise, no seed

    def transform(self, x, training=None):
        return x, None
