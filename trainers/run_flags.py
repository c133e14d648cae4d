"""The trainer's flags, generated from RunConfig and ModelConfig: one copy of every setting's name, default and help.

    from trainers import run_flags
    run_flags.define()                  # once, at import of a CLI module (trainers.cifar, tuning.search)
    config = run_flags.run_config()     # after absl parsed the command line

Each RunConfig field becomes a flag of the same name (an enum when the field declares choices, a bool for bools),
with the field's default and help text; each ModelConfig field except image_size becomes an override flag
(default None: keep the --model_preset's value) collected into ``RunConfig.model_overrides``.
"""

import dataclasses
import types

from absl import flags

from gd_bottleneck.config import ModelConfig
from gd_bottleneck.training import RunConfig

FLAGS = flags.FLAGS
RUN_FIELDS = [field for field in dataclasses.fields(RunConfig) if field.name != "model_overrides"]
MODEL_FIELDS = [field for field in dataclasses.fields(ModelConfig) if field.name != "image_size"]
_DEFINERS = {str: flags.DEFINE_string, int: flags.DEFINE_integer, float: flags.DEFINE_float, bool: flags.DEFINE_bool}


def _value_type(annotation):
    """``int`` for ``int`` and ``int | None``."""
    if isinstance(annotation, types.UnionType):
        (annotation,) = [arg for arg in annotation.__args__ if arg is not type(None)]
    return annotation


def _define(field, default, help_text):
    if "choices" in field.metadata:
        flags.DEFINE_enum(field.name, default, list(field.metadata["choices"]), help_text)
    else:
        _DEFINERS[_value_type(field.type)](field.name, default, help_text)


def define():
    """Defines every run and model flag (idempotent: a second call is a no-op)."""
    if "model_dir" in FLAGS:
        return
    for field in RUN_FIELDS:
        _define(field, field.default, field.metadata["help"])
    for field in MODEL_FIELDS:
        _define(field, None, f"Override the preset's ModelConfig.{field.name}: {field.metadata['help']}")


def run_settings():
    """The RunConfig fields the flags set, as a dict (not validated: tuning.search completes it per trial)."""
    overrides = {field.name: FLAGS[field.name].value for field in MODEL_FIELDS if FLAGS[field.name].value is not None}
    return {"model_overrides": overrides, **{field.name: FLAGS[field.name].value for field in RUN_FIELDS}}


def run_config():
    """The RunConfig the flags describe (``ValueError`` naming the flag on a bad value)."""
    return RunConfig(**run_settings())
