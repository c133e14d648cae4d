"""The training state as a ``tf.train.Checkpoint``: every model variable by path, and the optimizer.

Why not ``tf.train.Checkpoint(model=model)``: in Keras 3.15 a layer's ``_trackable_children`` does not expose layers
held in Python lists when saving a checkpoint (only for SavedModel), so the gated resnets and ResNet blocks — and
their noise counters — would silently be left out (measured: 24 of the 204 variables of a tiny HybridVAE were
saved). Keying every variable by its position in ``model.variables`` (a fixed order for a given architecture) and its
Keras path saves all of them, and restoring checks that each one matched.
"""

import glob
import os
import re
import shutil

import tensorflow as tf

from gd_bottleneck.errors import CheckpointError, CheckpointMismatch, DamagedFile
from gd_bottleneck.hybrid import HybridVAE
from gd_bottleneck.training import files
from gd_bottleneck.training.optimizer import make_optimizer
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


def restore(checkpoint, path, partial=False):
    """Restores ``path`` and checks every variable of ``checkpoint`` was found in it. ``partial`` (loading a model,
    not resuming a run): the file may hold more (the optimizer state) or less bookkeeping (no ``save_counter``: a
    model-only checkpoint written with ``Checkpoint.write``, as the studies keep them), so it is read with
    ``Checkpoint.read``, which neither creates nor expects that counter."""
    if partial:
        checkpoint.read(path).expect_partial().assert_existing_objects_matched()
    else:
        checkpoint.restore(path).assert_existing_objects_matched()


def step_of(prefix):
    """The training step a checkpoint prefix (``.../ckpt-<step>``) was saved at; -1 if it names none."""
    match = re.search(r"-(\d+)$", prefix)
    return int(match.group(1)) if match else -1


def candidates(directory):
    """Checkpoint prefixes in ``directory``, newest (highest step) first: the ones its index file lists and the ones
    whose ``.index`` file is on disk (a save killed after writing its files but before updating the index)."""
    listed = []
    try:
        state = tf.train.get_checkpoint_state(directory)
        if state is not None:
            listed = [os.path.join(directory, os.path.basename(path)) for path in state.all_model_checkpoint_paths]
    except (tf.errors.OpError, ValueError):  # a damaged index file: fall back to the files on disk
        pass
    on_disk = [path[:-len(".index")] for path in glob.glob(os.path.join(glob.escape(directory), "ckpt-*.index"))]
    return sorted(set(listed) | set(on_disk), key=step_of, reverse=True)


def remove_unfinished_saves(directory, failed_step=None):
    """Deletes ``ckpt-N_temp`` folders (the shards of a save that was killed or failed before it completed) and,
    given ``failed_step``, whatever files that failed save had written (the index file never listed them)."""
    for folder in glob.glob(os.path.join(glob.escape(directory), "*_temp")):
        shutil.rmtree(folder, ignore_errors=True)
    if failed_step is not None:
        for path in glob.glob(os.path.join(glob.escape(directory), f"ckpt-{failed_step}.*")):
            os.remove(path)


def _first_line(error):
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def restore_newest_intact(checkpoint, directory, warn=print, partial=False, quarantine=True):
    """Restores the newest checkpoint of ``directory`` that reads back completely; returns its prefix, or ``None``
    if the folder holds no checkpoint at all (a new run).

    A damaged or missing newest checkpoint (truncated data file, a save killed half-way, files deleted by hand) is
    reported through ``warn`` and the previous one is tried, down to the oldest. With ``quarantine`` (the run's one
    writer), the damaged ones are moved to ``directory/damaged/`` -- kept for inspection, never deleted -- and the
    index file is rewritten to list the intact ones, so the run continues from there and its next saves are
    consistent. If every checkpoint is damaged, :class:`~gd_bottleneck.errors.CheckpointError` says so instead of
    silently starting from scratch.
    """
    found = candidates(directory)
    damaged = []
    for prefix in found:
        try:
            restore(checkpoint, prefix, partial=partial)
        except Exception as error:  # noqa: BLE001 -- a failure to read back means "not intact", unless it reads
            if reads_back_completely(prefix):
                raise CheckpointMismatch(
                    f"checkpoint {prefix} is intact but does not fit the model its run_config.json describes "
                    f"({_first_line(error)}): the settings were edited, or the checkpoints belong to another run. "
                    "Restore the run's own run_config.json; nothing was moved.") from None
            warn(f"WARNING: checkpoint {prefix} is damaged or incomplete ({_first_line(error)}); "
                 "trying the previous one.")
            damaged.append(prefix)
            continue
        if damaged and quarantine:
            _quarantine(directory, damaged, found, prefix)
            warn(f"WARNING: resuming from {prefix}; the damaged checkpoint(s) were moved to "
                 f"{os.path.join(directory, 'damaged')}.")
        return prefix
    if damaged:
        raise CheckpointError(f"No intact checkpoint in {directory} (damaged: {', '.join(damaged)}). Move the "
                              "checkpoints folder away to start the run over.")
    return None


def reads_back_completely(prefix):
    """Whether every tensor of checkpoint ``prefix`` reads back (its index and data files are whole): a restore that
    fails on such a file failed because the model does not fit it, not because the file is damaged."""
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception:  # noqa: BLE001 -- anything unreadable is damage
        return False
    return True


def _quarantine(directory, damaged, found, intact):
    """Moves the files of the ``damaged`` prefixes to ``directory/damaged/`` and lists only intact ones in the
    index, with ``intact`` as the newest."""
    target = os.path.join(directory, "damaged")
    os.makedirs(target, exist_ok=True)
    for prefix in damaged:
        for path in glob.glob(glob.escape(prefix) + ".*"):
            os.replace(path, os.path.join(target, os.path.basename(path)))
    kept = [os.path.basename(prefix) for prefix in reversed(found)
            if prefix not in damaged and step_of(prefix) <= step_of(intact)]
    # Relative names, as tf.train.CheckpointManager writes them, so the run folder can still be moved.
    state = tf.compat.v1.train.generate_checkpoint_state_proto(os.path.abspath(directory), os.path.basename(intact),
                                                                all_model_checkpoint_paths=kept)
    files.write_text_atomically(os.path.join(directory, "checkpoint"), str(state))


def load_trained_model(model_dir, warn=print):
    """The HybridVAE of a training run, with the weights of its newest checkpoint (for export and sampling).

    Reads ``model_dir/run_config.json`` for the architecture and ``model_dir/checkpoints/`` for the weights (the
    Polyak averages when the run averages them; the rest of the optimizer state is not loaded); a damaged newest
    checkpoint is reported through
    ``warn`` and the previous one used. Raises ``FileNotFoundError`` naming what is missing.
    """
    settings = os.path.join(model_dir, "run_config.json")
    if not os.path.exists(settings):
        raise FileNotFoundError(f"`model_dir` {model_dir!r} has no run_config.json: it is not a training run's folder.")
    config = run_config_of(settings)
    if not candidates(os.path.join(model_dir, "checkpoints")):
        raise FileNotFoundError(f"`model_dir` {model_dir!r} has no checkpoint yet (checkpoints/ is empty).")
    model = HybridVAE(config.model_config(), **config.model_kwargs())
    averaging = None
    if config.polyak_decay > 0:  # the averages are optimizer variables
        averaging = make_optimizer(config, schedule_steps=1)  # the schedule's length holds no variable
        averaging.build(model.trainable_variables)
        checkpoint = training_checkpoint(model, averaging)
    else:
        checkpoint = tf.train.Checkpoint(model_variables=model_variables(model))
    newest = restore_newest_intact(checkpoint, os.path.join(model_dir, "checkpoints"), warn, partial=True,
                                   quarantine=False)  # reading only: a training run may be writing
    if averaging is not None:
        averaging.assign_averages(model.trainable_variables)
    return model, config, newest


def run_config_of(path):
    """The RunConfig in a run's ``run_config.json``; :class:`DamagedFile` (one line naming it) when the file is not
    JSON, not an object, or not settings this version knows (an unknown field, a value of the wrong type)."""
    advice = "Restore the run's own run_config.json (its checkpoints are kept)."
    saved = files.read_json(path, advice=advice)
    try:
        return RunConfig.from_dict(saved)
    except (TypeError, ValueError) as error:
        raise DamagedFile(f"{path} does not hold a run's settings ({error}). {advice}") from None


WALL_TIME_FILE = "wall_time.json"


def record_wall_time(directory, prefix, seconds):
    """Notes that the run had spent ``seconds`` (wall clock, all segments) when it saved checkpoint ``prefix``."""
    path = os.path.join(directory, WALL_TIME_FILE)
    recorded = _wall_times(path)
    recorded[os.path.basename(prefix)] = round(seconds, 3)
    files.write_json_atomically(path, recorded)


def recorded_wall_time(directory, prefix):
    """Seconds the run had spent when it saved checkpoint ``prefix`` (0 for ``None``, a new run, or no record)."""
    path = os.path.join(directory, WALL_TIME_FILE)
    if prefix is None:
        return 0.0
    return float(_wall_times(path).get(os.path.basename(prefix), 0.0))


def _wall_times(path):
    """The recorded wall times (``{}`` when the file is missing or damaged: bookkeeping, rewritten at the next
    checkpoint, never a reason to stop a run)."""
    try:
        return files.read_json(path) if os.path.exists(path) else {}
    except DamagedFile:
        return {}
