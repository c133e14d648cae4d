"""What a search compares: every registered bottleneck kind, plus presets built from them.

A *family* is a name that ``--tune_bottleneck`` accepts and that the Figure 2 tables and plots group runs by. Each
registered bottleneck (gd_bottleneck/bottleneck_registry.py) is a family of its own; a preset is a registered
bottleneck plus fixed settings. The one preset is the paper's other baseline: no bottleneck and an auxiliary
non-autoregressive decoder (Lucas & Verbeek 2018), whose strength is ``aux_weight``.
"""

import dataclasses

from gd_bottleneck import bottleneck_registry
from gd_bottleneck.bottlenecks import IdentityBottleneck

DEFAULT_AUX_WEIGHT = 1.0  # the auxiliary decoder's NLL weight when neither --aux_weight nor --tune_aux_weight set it


@dataclasses.dataclass(frozen=True)
class Family:
    """``name`` (for flags and tables), the registered ``bottleneck`` it trains, the setting holding its strength
    (``strength_argument``, or None), a plot ``label``, and for presets the strength's default."""

    name: str
    bottleneck: str
    strength_argument: str | None
    label: str
    default_strength: float | None = None

    @property
    def is_preset(self):
        return self.name != self.bottleneck

    def apply(self, settings):
        """Trainer settings (a RunConfig dict) made a trial of this family: its bottleneck, a preset's strength
        (the given one, else its default), and the other bottlenecks' strengths cleared (recorded as unused, not as
        a value that had no effect)."""
        settings = dict(settings, bottleneck=self.bottleneck)
        if self.is_preset:
            settings[self.strength_argument] = settings.get(self.strength_argument) or self.default_strength
        for argument in bottleneck_registry.STRENGTH_ARGUMENTS:
            if argument != self.strength_argument:
                settings[argument] = None
        return settings


PRESETS = (Family("auxiliary_decoder", IdentityBottleneck.kind, "aux_weight", "no bottleneck + auxiliary decoder",
                  DEFAULT_AUX_WEIGHT),)


def all_families():
    """Registered kinds first (registration order), then the presets."""
    kinds = [bottleneck_registry.get(kind) for kind in bottleneck_registry.names()]
    return [Family(cls.kind, cls.kind, cls.strength_argument, cls.label) for cls in kinds] + list(PRESETS)


def names():
    return tuple(family.name for family in all_families())


def get(name):
    """The family called ``name`` (``ValueError`` listing the names otherwise)."""
    for family in all_families():
        if family.name == name:
            return family
    raise ValueError(f"Argument `bottleneck` must be one of {list(names())}. Received: bottleneck={name!r}")


def family_of(config):
    """The family of a run's settings (a RunConfig dict): a preset when its bottleneck and a positive strength
    match, else the run's registered bottleneck."""
    for preset in PRESETS:
        if config["bottleneck"] == preset.bottleneck and (config.get(preset.strength_argument) or 0) > 0:
            return preset
    return get(config["bottleneck"])


def using(argument):
    """Names of the families whose strength is ``argument`` (the conditional scope of ``--tune_<argument>``)."""
    return tuple(family.name for family in all_families() if family.strength_argument == argument)
