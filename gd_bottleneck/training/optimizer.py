"""The trainer's optimizer: Adam, optionally with Polyak averaging of the weights for evaluation (PixelCNN++).

Polyak averaging (Polyak & Juditsky 1992; PixelCNN++ evaluates with decay 0.9995) keeps an exponential moving
average of the weights, ``avg <- decay * avg + (1 - decay) * w`` after every step, and evaluates and exports the
average instead of the last iterate. Keras' optimizers maintain that average themselves (``use_ema``), as optimizer
variables, so checkpoints carry it and a resumed run continues it. What this module changes is *when* the average
replaces the weights: Keras copies it into the model at the end of every ``fit`` call, and the trainer calls
``fit`` more than once in a run (a resumed run finishes its epoch first), which would make training continue from
the average. Here the model always trains on its own weights and :func:`averaged_weights` swaps the average in for
evaluation and export only.
"""

import contextlib

import keras


@keras.saving.register_keras_serializable(package="gd_bottleneck")
class PolyakAdam(keras.optimizers.Adam):
    """Keras' Adam with ``use_ema=True`` whose averages never overwrite the weights behind the trainer's back."""

    def finalize_variable_values(self, var_list):
        """Called by ``fit`` at its end: left as is (see the module docstring; :func:`averaged_weights`)."""

    def assign_averages(self, var_list):
        """Overwrites ``var_list`` (the model's trainable variables) with their moving averages."""
        super().finalize_variable_values(var_list)


def learning_rate_schedule(config, total_steps):
    """``learning_rate`` annealed to ``final_learning_rate`` over ``total_steps`` (exponential: geometric)."""
    start, end = config.learning_rate, config.final_learning_rate
    decay_steps = max(total_steps, 1)
    if config.lr_schedule == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(start, decay_steps, end / start)
    if config.lr_schedule == "linear":
        return keras.optimizers.schedules.PolynomialDecay(start, decay_steps, end, power=1.0)
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(start, decay_steps, alpha=end / start)
    return start


def make_optimizer(config, schedule_steps):
    """The run's Adam (``config``: a RunConfig) with its learning-rate schedule over ``schedule_steps``; a
    :class:`PolyakAdam` averaging with ``config.polyak_decay`` when that is > 0."""
    options = {"beta_1": config.adam_beta1, "beta_2": config.adam_beta2, "epsilon": config.adam_epsilon}
    schedule = learning_rate_schedule(config, schedule_steps)
    if config.polyak_decay > 0:
        return PolyakAdam(schedule, use_ema=True, ema_momentum=config.polyak_decay, **options)
    return keras.optimizers.Adam(schedule, **options)


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
