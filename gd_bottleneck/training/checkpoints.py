"""The training state as a ``tf.train.Checkpoint``: every model variable by path, and the optimizer.

Why not ``tf.train.Checkpoint(model=model)``: in Keras 3.15 a layer's ``_trackable_children`` does not expose layers
held in Python lists when saving a checkpoint (only for SavedModel), so the gated resnets and ResNet blocks — and
their noise counters — would silently be left out (measured: 24 of the 204 variables of a tiny HybridVAE were
saved). Keying every variable by its position in ``model.variables`` (a fixed order for a given architecture) and its
Keras path saves all of them, and restoring checks that each one matched.
"""

import tensorflow as tf


def model_variables(model):
    """``{"<index>:<path>": variable}`` for every variable of ``model`` (weights, state, noise counters).

    Paths alone are not unique (a variable created in a layer's ``__init__`` has only its own layer's name).
    """
    return {f"{index:05d}:{variable.path}": variable for index, variable in enumerate(model.variables)}


def training_checkpoint(model, optimizer):
    """A checkpoint of the whole training state: model variables (incl. noise counters) and optimizer (incl. step)."""
    return tf.train.Checkpoint(model_variables=model_variables(model), optimizer=optimizer)


def restore(checkpoint, path):
    """Restores ``path`` and checks every variable of the training state was found in it."""
    checkpoint.restore(path).assert_existing_objects_matched()
