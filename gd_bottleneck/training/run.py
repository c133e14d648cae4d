"""One training run: RunConfig -> data -> strategy -> HybridVAE -> fit (resumable) -> test evaluation -> export.

    run = train(RunConfig(model_dir="runs/demo", dataset="shapes", image_size=16, dropout_rate=0.1, epochs=2))

Layout of ``model_dir``:
    run_config.json        the settings (a rerun must match them to resume; see RunConfig.check_resumable_from)
    checkpoints/           model, optimizer (incl. step) and noise-stream counters, the newest few; wall_time.json
                           (training seconds up to each checkpoint); damaged/ (checkpoints that failed to read back)
    tensorboard/           scalars (every metric, learning rate) and image grids
    results.json           written at the end: test bits/dim, the settings, steps, wall time
and the SavedModel export under ``export_dir`` (default ``model_dir/export``), one integer version per run.

Resuming: step s of a run always trains on the same batch (see ``data.training_batches``), the noise streams are
counters saved in the checkpoint, and the learning rate is a function of the restored optimizer step, so a run
stopped at a checkpoint and resumed ends with the weights an uninterrupted run would have (bit for bit with
``deterministic=True``). Rerunning a finished run's command finishes what is missing (test evaluation, export,
results.json) or reports that the run is complete.

Everything that can be checked before the model_dir is touched is checked first (settings, data sizes, the settings
of a run already in model_dir), so a refused command leaves nothing behind that would refuse the corrected one.
"""

import contextlib
import dataclasses
import fcntl
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from gd_bottleneck import data
from gd_bottleneck.errors import DamagedFile, RunInUse, SettingsError, TrainingDiverged, TrainingInterrupted
from gd_bottleneck.export import export_saved_model
from gd_bottleneck.hybrid import HybridVAE
from gd_bottleneck.training import callbacks, checkpoints, files, strategies
from gd_bottleneck.training.optimizer import averaged_weights, make_optimizer
from gd_bottleneck.training.run_config import RunConfig, run_identity

__all__ = ["TrainingDiverged", "TrainingInterrupted", "train"]


def fit_segments(start_step, steps_per_epoch, epochs):
    """``(initial_epoch, end_epoch, steps_per_epoch, first_step)`` of the ``fit`` calls that finish a run from
    ``start_step``: the rest of a partly done epoch, then whole epochs."""
    epoch, done = divmod(start_step, steps_per_epoch)
    if done:
        yield epoch, epoch + 1, steps_per_epoch - done, start_step
        epoch += 1
    if epoch < epochs:
        yield epoch, epochs, steps_per_epoch, epoch * steps_per_epoch


@dataclasses.dataclass
class RunData:
    """The splits of a run (uint8 ``[N, H, W, 3]``) and its step counts."""
    train: np.ndarray
    validation: np.ndarray | None
    test: np.ndarray
    steps_per_epoch: int
    total_steps: int


def _hold_out(images, count):
    """``(images[:-count], images[-count:])``: the last ``count`` training images become the validation split."""
    if count == 0:
        return images, None
    if count >= len(images):
        raise SettingsError(f"Argument `validation_examples` must be in [0, {len(images)}) (the training split has "
                            f"{len(images)} images). Received: validation_examples={count}")
    return images[:-count], images[-count:]


def load_run_data(config):
    """Loads (preparing if needed) the splits and checks the batch sizes against them (``SettingsError``)."""
    train_images = data.load_images(config.dataset, "train", config.image_size, config.data_dir, config.manual_dir)
    test_images = data.load_images(config.dataset, "test", config.image_size, config.data_dir, config.manual_dir)
    train_images, validation_images = _hold_out(train_images, config.validation_examples)
    steps_per_epoch = len(train_images) // config.batch_size
    if config.steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.steps_per_epoch)
    if steps_per_epoch < 1:
        raise SettingsError(f"Argument `batch_size` must be at most the {len(train_images)} training images. "
                            f"Received: batch_size={config.batch_size}")
    return RunData(train_images, validation_images, test_images, steps_per_epoch, steps_per_epoch * config.epochs)


def _check_against_saved_run(config):
    """Refuses (``SettingsError``) settings that differ from the run already in ``model_dir``, and checkpoints whose
    settings are unknown (no readable run_config.json beside them): resuming them under the flags of the moment
    would record settings those weights were never trained with. Reads only."""
    path = os.path.join(config.model_dir, "run_config.json")
    if os.path.exists(path):
        saved = files.read_json(path, advice="The settings of the run in `model_dir` are unknown: restore the file, "
                                "or use a new model_dir.")
        config.check_resumable_from(saved)
    elif checkpoints.candidates(os.path.join(config.model_dir, "checkpoints")):
        raise SettingsError(f"`model_dir` {config.model_dir!r} holds checkpoints but no run_config.json: the settings "
                            "they were trained with are unknown, so they are not resumed. Use a new model_dir, or "
                            "put the run's run_config.json back.")


@contextlib.contextmanager
def exclusive(model_dir, chief=True, name=".lock", doing="training"):
    """Holds an advisory lock (the file ``name`` in ``model_dir``) for the run (chief only): two trainers in one
    folder would overwrite each other's checkpoints. The lock goes away with the process, so a killed run never
    leaves it held. Callers with a longer unit of work (a study's train, evaluate and keep) hold their own ``name``
    around the trainer's: a flock taken twice in one process through two opens would refuse itself."""
    if not chief:
        yield
        return
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, name), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInUse(f"Another process is {doing} in `model_dir` {os.path.abspath(model_dir)!r}; wait for "
                           "it to finish, or stop it, before rerunning.") from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _checkpoint_dirs(config, chief):
    """``(restore_from, write_to)``. Every worker restores the chief's checkpoints (the run's state); non-chief
    workers of a multi-worker run write their identical copies to a scratch folder (saving is a collective op)."""
    run_checkpoints = os.path.join(config.model_dir, "checkpoints")
    if chief:
        return run_checkpoints, run_checkpoints
    return run_checkpoints, os.path.join(config.model_dir, "workers", f"pid-{os.getpid()}")


def build_model(config, schedule_steps):
    """The compiled model and its built optimizer (call inside the strategy's scope)."""
    model = HybridVAE(config.model_config(), **config.model_kwargs())
    model.compile(optimizer=make_optimizer(config, schedule_steps))
    model.optimizer.build(model.trainable_variables)  # a LossScaleOptimizer around Adam with mixed_float16
    return model


def _fit(config, model, manager, run_data, start_step, wall_time, chief, write):
    """Trains from ``start_step`` to the end; returns the CheckpointGuard (what stopped the run, if anything)."""
    guard = callbacks.CheckpointGuard(manager, config.checkpoint_every, wall_time)
    guard.set_model(model)
    fit_callbacks = [guard]
    bar = config.progress == "bar" or (config.progress == "auto" and sys.stdout.isatty())
    if not bar:
        fit_callbacks.append(callbacks.ProgressLines(run_data.total_steps, config.batch_size, config.log_every, write))
    if chief and config.curve_points:
        held_out = run_data.validation if run_data.validation is not None else run_data.test
        fit_callbacks.append(callbacks.LearningCurve(
            held_out, config.eval_batch_size or config.batch_size, run_data.total_steps, config.curve_points,
            os.path.join(config.model_dir, "curve.jsonl"), wall_time))
    if chief:  # one writer of the events: the workers' would interleave in the same files
        log_dir = os.path.join(config.model_dir, "tensorboard")
        fit_callbacks.append(keras.callbacks.TensorBoard(log_dir, update_freq=config.log_every))
        if config.image_summaries:
            fit_callbacks.append(callbacks.ImageSummaries(os.path.join(log_dir, "images"),
                                                          run_data.test[:config.image_summaries], config.seed))
    for initial_epoch, end_epoch, steps, first_step in fit_segments(start_step, run_data.steps_per_epoch,
                                                                    config.epochs):
        batches = data.training_batches(run_data.train, config.batch_size, run_data.steps_per_epoch, config.epochs,
                                        config.seed, first_step)
        model.fit(batches, initial_epoch=initial_epoch, epochs=end_epoch, steps_per_epoch=steps,
                  callbacks=fit_callbacks, verbose=1 if bar else 0, shuffle=False)
        if model.stop_training:
            break
    return guard


def _evaluate(config, model, run_data):
    """``{"<split>_<metric>": value}`` over the validation (if any) and test splits, in bits/dim (with the Polyak
    averages of the weights when the run averages)."""
    results = {}
    with averaged_weights(model):
        for split, images in (("validation", run_data.validation), ("test", run_data.test)):
            if images is not None:
                batches = data.evaluation_batches(images, config.eval_batch_size or config.batch_size)
                evaluation = model.evaluate(batches, return_dict=True, verbose=0)
                results.update({f"{split}_{name}": float(value) for name, value in evaluation.items()})
    return results


def _finished_results(config, step):
    """The results.json of a run already finished at ``step`` with everything it should have, else ``None``."""
    path = os.path.join(config.model_dir, "results.json")
    if not os.path.exists(path):
        return None
    try:
        results = files.read_json(path)
    except DamagedFile:
        return None  # not finished as far as anyone can tell: the run ends again and rewrites it
    if results.get("steps") != step or (config.export and "export" not in results):
        return None
    return results


def train(config, write=print):
    """Runs (or resumes, or finishes) a training run; returns the results dict also written to
    ``model_dir/results.json``.

    Raises :class:`~gd_bottleneck.errors.TrainingDiverged` on a non-finite loss and
    :class:`~gd_bottleneck.errors.TrainingInterrupted` after SIGTERM/SIGINT (both leave the newest good checkpoint
    in place); other :class:`~gd_bottleneck.errors.UserError` s name a setting or file to fix.
    """
    if not isinstance(config, RunConfig):
        raise TypeError(f"`config` must be a RunConfig. Received: {type(config).__name__}")
    began = time.time()
    strategies.set_intra_op_threads(config.intra_op_threads)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.seed)  # any unseeded draw left (Python, NumPy, TF global) follows the seed
    strategy = strategies.make_strategy(config.strategy, config.cpu_replicas)
    chief = strategies.is_chief()
    _check_against_saved_run(config)
    run_data = load_run_data(config)
    with exclusive(config.model_dir, chief):
        if chief:
            files.write_json_atomically(os.path.join(config.model_dir, "run_config.json"), config.to_dict())
        return _train_in(config, strategy, chief, run_data, began, write)


def _train_in(config, strategy, chief, run_data, began, write):
    restore_from, write_to = _checkpoint_dirs(config, chief)
    if chief:
        checkpoints.remove_unfinished_saves(restore_from)
    with strategy.scope():
        model = build_model(config, run_data.steps_per_epoch * config.annealing_epochs)
        checkpoint = checkpoints.training_checkpoint(model, model.optimizer)
        restored = checkpoints.restore_newest_intact(checkpoint, restore_from, lambda text: write(text, flush=True),
                                                     quarantine=chief)
        manager = tf.train.CheckpointManager(checkpoint, write_to, max_to_keep=config.keep_checkpoints)
        start_step = int(model.optimizer.iterations.numpy())
        if restored is None:  # a new run: weight-normalised layers start from the data (a no-op otherwise)
            model.initialize_from_data(run_data.train[:config.batch_size])
    earlier_time = checkpoints.recorded_wall_time(restore_from, restored)
    total_steps = run_data.total_steps
    if start_step >= total_steps:
        finished = _finished_results(config, start_step)
        if finished is not None:
            write(f"Run complete ({start_step}/{total_steps} steps): results in "
                  f"{os.path.join(config.model_dir, 'results.json')}", flush=True)
            return finished
        write(f"Training finished at step {start_step}/{total_steps}; finishing the evaluation and export.",
              flush=True)
    else:
        write(f"{'Resuming at' if start_step else 'Starting'} step {start_step}/{total_steps}: "
              f"{model.count_params():,} parameters, {strategy.num_replicas_in_sync} replica(s), "
              f"{run_data.steps_per_epoch} steps/epoch of {config.batch_size} images, model_dir={config.model_dir}",
              flush=True)
    wall_time = callbacks.WallTime(earlier_time, began)
    guard = _fit(config, model, manager, run_data, start_step, wall_time, chief, write)
    step = int(model.optimizer.iterations.numpy())
    if guard.diverged_at is not None:
        kept = (f"The newest checkpoint ({manager.latest_checkpoint}) is the last good one" if manager.latest_checkpoint
                else "No checkpoint was written before it")
        raise TrainingDiverged(
            f"The loss became NaN/inf at step {guard.diverged_at}; training stopped. {kept}. A run's learning rate "
            f"cannot change: rerun with a lower --learning_rate in a new --model_dir (or check the data).")
    if guard.signal_received:
        raise TrainingInterrupted(f"{guard.signal_received} received: checkpoint saved at step {step} in "
                                  f"{manager.directory}; rerun the same command to resume.")
    guard.save()

    results = _evaluate(config, model, run_data)
    results.update(steps=step, total_steps=total_steps, wall_time_s=round(wall_time.total(), 1),
                   parameters=model.count_params(), replicas=strategy.num_replicas_in_sync,
                   test_images=len(run_data.test), validation_images=config.validation_examples,
                   config=config.to_dict(), model_config=config.model_config().to_dict())
    if chief:
        _publish(config, model, results)
    write(f"Test: elbo {results['test_elbo_bpd']:.4f} bits/dim, KL {results['test_kl_bpd']:.4f} bits/dim; "
          f"results in {os.path.join(config.model_dir, 'results.json')}", flush=True)
    return results


def _publish(config, model, results):
    """The chief's last step: the export (Polyak-averaged weights if the run averages) and results.json, which is
    written last, so its presence means the run is complete."""
    if config.export:
        with averaged_weights(model):
            results["export"] = export_saved_model(model, config.export_base, run_identity(config))
    files.write_json_atomically(os.path.join(config.model_dir, "results.json"), results)
