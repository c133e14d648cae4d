"""The training state as a ``tf.train.Checkpoint``: every model variable by path, and the optimizer.

Why not ``tf.train.Checkpoint(model=model)``: in Keras 3.15 a layer's ``_trackable_children`` does not expose layers
held in Python lists when saving a checkpoint (only for SavedModel), so the gated resnets and ResNet blocks — and
their noise counters — would silently be left out (measured: 24 of the 204 variables of a tiny HybridVAE were
saved). Keying every variable by its position in ``model.variables`` (a fixed order for a given architecture) and its
Keras path saves all of them, and restoring checks that each one matched.
"""

import os

import tensorflow as tf

from gd_bottleneck.hybrid import HybridVAE
from gd_bottleneck.training import files
from gd_bottleneck.training.run_config import RunConfig


def model_variables(model):
    """``{"<index>:<path>": variable}`` for every variable of ``model`` (weights, state, noise counters).

    Paths alone are not unique (a variable created in a layer's ``__init__`` has only its own layer's name). The
    model's own name is left out of the key: Keras numbers auto-named models per process (``hybrid_vae``,
    ``hybrid_vae_1``, ...), so a tuner worker's second trial, or a process that loads several runs, would otherwise
    not find its variables in a checkpoint written by a process that built one model.
    """
    prefix = f"{model.name}/"
    return {f"{index:05d}:{variable.path.removeprefix(prefix)}": variable
            for index, variable in enumerate(model.variables)}


def training_checkpoint(model, optimizer):
    """A checkpoint of the whole training state: model variables (incl. noise counters) and optimizer (incl. step)."""
    return tf.train.Checkpoint(model_variables=model_variables(model), optimizer=optimizer)


def restore(checkpoint, path):
    """Restores ``path`` and checks every variable of the training state was found in it."""
    checkpoint.restore(path).assert_existing_objects_matched()


def load_trained_model(model_dir):
    """The HybridVAE of a training run, with the weights of its newest checkpoint (for export and sampling).

    Reads ``model_dir/run_config.json`` for the architecture and ``model_dir/checkpoints/`` for the weights; the
    optimizer state in the checkpoint is not needed and not loaded. Raises ``FileNotFoundError`` naming what is
    missing.
    """
    settings = os.path.join(model_dir, "run_config.json")
    if not os.path.exists(settings):
        raise FileNotFoundError(f"`model_dir` {model_dir!r} has no run_config.json: it is not a training run's folder.")
    config = RunConfig.from_dict(files.read_json(settings))
    newest = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    if newest is None:
        raise FileNotFoundError(f"`model_dir` {model_dir!r} has no checkpoint yet (checkpoints/ is empty).")
    model = HybridVAE(config.model_config(), **config.model_kwargs())
    status = tf.train.Checkpoint(model_variables=model_variables(model)).restore(newest)
    status.expect_partial().assert_existing_objects_matched()
    return model, config, newest
