"""A KerasTuner HyperModel over the trainer's configuration: one trial = one :class:`RunConfig` = one training run.

Why the trial is a RunConfig rather than just a model: a trial of this project is a whole training run (the
trainer's schedule, strategy, checkpoints, NaN guard, test evaluation, results.json), so trials are exactly the runs
``python -m trainers.cifar`` would make with the same flags, and a trial's folder can be exported, sampled or
resumed with the trainer's tools. ``build(hp)`` still returns the trial's compiled :class:`HybridVAE`, for
KerasTuner's ``get_best_models`` and for users who want to fit it themselves.
"""

import dataclasses

import keras
import keras_tuner as kt

from gd_bottleneck.hybrid import HybridVAE
from gd_bottleneck.training.run_config import RunConfig
from tuning import families, space


class TrainerHyperModel(kt.HyperModel):
    """Maps KerasTuner hyper-parameters onto the trainer's RunConfig.

    Args:
        base: dict of RunConfig fields shared by every trial (the trainer flags); ``model_dir`` is replaced per trial.
            Its ``bottleneck`` is the family used when ``bottleneck`` is not tuned (any of ``tuning.families``).
        tunables: list of :class:`tuning.space.Tunable`, the settings the search varies.

    Raises ``ValueError`` (naming the flag) when a trial could not be configured, e.g. a Gaussian dropout kind with
    neither ``dropout_rate`` nor ``--tune_dropout_rate``: checked here, before any trial runs.
    """

    def __init__(self, base, tunables):
        super().__init__(name="gd_bottleneck_trainer")
        self.base = dict(base)
        self.tunables = {tunable.name: tunable for tunable in tunables}
        bottleneck = self.tunables.get("bottleneck")
        self.kinds = bottleneck.values if bottleneck else (self.base["bottleneck"],)
        families.get(self.kinds[0])  # ValueError listing the families
        for tunable in tunables:
            condition = tunable.kind_condition
            if condition and not set(condition) & set(self.kinds):
                raise ValueError(f"Flag `--tune_{tunable.name}` only applies to bottleneck kinds {list(condition)}, "
                                 f"but the search uses {list(self.kinds)}; add one with --tune_bottleneck.")
        for kind in self.kinds:  # every kind must make a valid RunConfig with the first values of the tunables
            self.run_config(self._first_values(kind), "check")

    def _first_values(self, kind):
        values = {"bottleneck": kind}
        for name, tunable in self.tunables.items():
            if name != "bottleneck" and (tunable.kind_condition is None or kind in tunable.kind_condition):
                values[name] = tunable.values[0] if tunable.values else tunable.low
        return values

    def declare_hyperparameters(self, hp):
        """Registers every tuned setting (conditional ones in their kind's scope); returns this trial's values."""
        values = {}
        # Declared first, the seed varies slowest in a grid (KerasTuner's grid advances the last-declared setting
        # first): every setting runs with seed 0 before any runs with seed 1, so a sweep stopped part-way already
        # covers the whole trade-off curve.
        for name in ("seed", "bottleneck"):
            if name in self.tunables:
                values[name] = self.tunables[name].declare(hp)
        for name, tunable in self.tunables.items():
            if name in ("seed", "bottleneck"):
                continue
            condition = tunable.kind_condition
            if condition and "bottleneck" in self.tunables:
                with hp.conditional_scope("bottleneck", [kind for kind in condition if kind in self.kinds]):
                    value = tunable.declare(hp)
            else:
                value = tunable.declare(hp)
            if value is not None:
                values[name] = value
        values.setdefault("bottleneck", self.kinds[0])
        return values

    def run_config(self, values, model_dir):
        """The RunConfig of a trial from its hyper-parameter ``values`` (a dict, e.g. ``hp.values``)."""
        settings = dict(self.base, model_dir=model_dir)
        overrides = dict(settings.get("model_overrides") or {})
        for name, value in values.items():
            if name in space.MODEL_FIELDS:
                overrides[name] = value
            elif name != "bottleneck":
                settings[name] = value
        settings["model_overrides"] = overrides
        settings = families.get(values.get("bottleneck", self.kinds[0])).apply(settings)
        try:
            return RunConfig(**settings)
        except ValueError as error:
            raise ValueError(f"Trial settings {values} are invalid: {str(error).replace('Argument `', 'Flag `--')}") \
                from None

    def trial_run_config(self, hp, model_dir):
        """The RunConfig of the trial whose HyperParameters are ``hp``."""
        return self.run_config(self.declare_hyperparameters(hp), model_dir)

    def build(self, hp):
        """The trial's HybridVAE, compiled with the trainer's Adam settings (constant learning rate)."""
        config = self.trial_run_config(hp, "unused")
        model = HybridVAE(config.model_config(), **config.model_kwargs())
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate, beta_1=config.adam_beta1,
                                                      beta_2=config.adam_beta2, epsilon=config.adam_epsilon))
        return model


def kind_of(config):
    """The search family name of a RunConfig (or its dict), e.g. ``auxiliary_decoder`` for none + aux_weight > 0."""
    return families.family_of(dataclasses.asdict(config) if isinstance(config, RunConfig) else config).name
