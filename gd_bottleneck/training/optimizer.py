"""The trainer's optimizer: Adam, optionally with Polyak averaging of the weights for evaluation (PixelCNN++).

Polyak averaging (Polyak & Juditsky 1992; PixelCNN++ evaluates with decay 0.9995) keeps an exponential moving
average of the weights, ``avg <- decay_t * avg + (1 - decay_t) * w`` after every step (``decay_t`` warms up to
``decay``, see :meth:`PolyakAdam._update_model_variables_moving_average`), and evaluates and exports the average
instead of the last iterate. Keras' optimizers maintain that average themselves (``use_ema``), as optimizer
variables, so checkpoints carry it and a resumed run continues it. What this module changes is *when* the average
replaces the weights: Keras copies it into the model at the end of every ``fit`` call, and the trainer calls
``fit`` more than once in a run (a resumed run finishes its epoch first), which would make training continue from
the average. Here the model always trains on its own weights and :func:`averaged_weights` swaps the average in for
evaluation and export only.
"""

import contextlib

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="gd_bottleneck")
class FusedAdam(keras.optimizers.Adam):
    """Keras' Adam whose per-variable update is TensorFlow's fused ``ResourceApplyAdam`` kernel.

    Keras 3 writes Adam's update as about ten tensor ops per variable (two ``assign_add`` s of products, a square, a
    square root, a division, ...); TensorFlow's kernel does the same arithmetic in one op per variable, in the same
    order (``m += (g - m)(1 - b1)``, ``v += (g^2 - v)(1 - b2)``, ``w -= m * alpha / (sqrt(v) + eps)`` with
    ``alpha = lr sqrt(1 - b2^t) / (1 - b1^t)``), so it is a drop-in replacement: the same slot variables (and
    checkpoints) and the same results up to rounding (the kernel computes ``1 - b1`` in float32, Keras in float64:
    about 2e-7 relative; tests/test_polyak.py compares them step by step), under ``tf.distribute`` too (the update
    runs on each replica's copy of the variable). Small models on CPUs, where the step is dominated by
    op dispatch, train faster (docs/benchmarks.md). AMSGrad and sparse gradients use Keras' own update.
    """

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        local_step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(self._momentums[index]), v=_handle(self._velocities[index]),
            beta1_power=tf.pow(beta_1, local_step), beta2_power=tf.pow(beta_2, local_step),
            lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2, epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype), use_locking=False)


def _handle(variable):
    """The resource handle of a Keras or TensorFlow variable (inside ``Strategy.extended.update``, a distributed
    variable's handle is the one of the replica being updated)."""
    variable = getattr(variable, "value", variable) if isinstance(variable, keras.Variable) else variable
    return variable.handle


@keras.saving.register_keras_serializable(package="gd_bottleneck")
class PolyakAdam(FusedAdam):
    """Keras' Adam with ``use_ema=True`` whose averages never overwrite the weights behind the trainer's back."""

    def _update_model_variables_moving_average(self, trainable_variables):
        """Keras' update with TensorFlow's warm-up of the decay (``tf.train.ExponentialMovingAverage`` with
        ``num_updates``): ``decay_t = min(decay, (1 + t) / (10 + t))`` at step t, the first step copying the weights.

        Without it the step-0 weights keep a share of ``decay ** T`` in the average after T steps (17% after 1,779
        steps at 0.999), and a short run's average is dragged towards its initialisation: measured on the CPU-scale
        protocol, 0.8 bits/dim worse than the last weights (studies/recipe_ablation/results/).
        """
        step = keras.ops.cast(self.iterations, "float32")
        decay = keras.ops.minimum(self.ema_momentum, (1.0 + step) / (10.0 + step))
        decay = decay * keras.ops.cast(keras.ops.not_equal(self.iterations, 0), "float32")
        for variable, average in zip(trainable_variables, self._model_variables_moving_average):
            if average is not None:
                momentum = keras.ops.cast(decay, variable.dtype)
                average.assign(momentum * average + (1.0 - momentum) * variable)

    def finalize_variable_values(self, var_list):
        """Called by ``fit`` at its end: left as is (see the module docstring; :func:`averaged_weights`)."""

    def assign_averages(self, var_list):
        """Overwrites ``var_list`` (the model's trainable variables) with their moving averages."""
        super().finalize_variable_values(var_list)


@keras.saving.register_keras_serializable(package="gd_bottleneck")
class HeldAfterAnnealing(keras.optimizers.schedules.LearningRateSchedule):
    """``schedule(min(step, steps))``: an annealing schedule that holds its final rate after ``steps``.

    Why: Keras' ExponentialDecay keeps decaying past its ``decay_steps`` (the polynomial and cosine decays hold),
    and a run extended beyond its annealing (``RunConfig.schedule_epochs`` < ``epochs``) should continue at its
    final learning rate, whatever the schedule. Up to ``steps`` the rates are the wrapped schedule's, bit for bit.
    """

    def __init__(self, schedule, steps):
        self.schedule = schedule
        self.steps = int(steps)

    def __call__(self, step):
        return self.schedule(keras.ops.minimum(step, self.steps))

    def get_config(self):
        return {"schedule": keras.saving.serialize_keras_object(self.schedule), "steps": self.steps}

    @classmethod
    def from_config(cls, config):
        return cls(keras.saving.deserialize_keras_object(config["schedule"]), config["steps"])


def learning_rate_schedule(config, total_steps):
    """``learning_rate`` annealed to ``final_learning_rate`` over ``total_steps`` (exponential: geometric), then
    held at ``final_learning_rate``."""
    start, end = config.learning_rate, config.final_learning_rate
    decay_steps = max(total_steps, 1)
    if config.lr_schedule == "exponential":
        return HeldAfterAnnealing(keras.optimizers.schedules.ExponentialDecay(start, decay_steps, end / start),
                                  decay_steps)
    if config.lr_schedule == "linear":
        return keras.optimizers.schedules.PolynomialDecay(start, decay_steps, end, power=1.0)
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(start, decay_steps, alpha=end / start)
    return start


def make_optimizer(config, schedule_steps):
    """The run's :class:`FusedAdam` (``config``: a RunConfig) with its learning-rate schedule over
    ``schedule_steps``; a :class:`PolyakAdam` averaging with ``config.polyak_decay`` when that is > 0."""
    options = {"beta_1": config.adam_beta1, "beta_2": config.adam_beta2, "epsilon": config.adam_epsilon}
    schedule = learning_rate_schedule(config, schedule_steps)
    if config.polyak_decay > 0:
        return PolyakAdam(schedule, use_ema=True, ema_momentum=config.polyak_decay, **options)
    return FusedAdam(schedule, **options)


def averaging_optimizer(model):
    """The model's :class:`PolyakAdam` (inside a LossScaleOptimizer too), or None."""
    optimizer = getattr(model, "optimizer", None)
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    return optimizer if isinstance(optimizer, PolyakAdam) else None


@contextlib.contextmanager
def averaged_weights(model):
    """Within the context the model's trainable weights are their Polyak averages (a no-op without averaging);
    the training weights are put back on exit, bit for bit."""
    optimizer = averaging_optimizer(model)
    if optimizer is None:
        yield model
        return
    variables = model.trainable_variables
    saved = [variable.numpy() for variable in variables]
    optimizer.assign_averages(variables)
    try:
        yield model
    finally:
        for variable, value in zip(variables, saved):
            variable.assign(value)
