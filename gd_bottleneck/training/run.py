"""One training run: RunConfig -> data -> strategy -> HybridVAE -> fit (resumable) -> test evaluation -> export.

    run = train(RunConfig(model_dir="runs/demo", dataset="shapes", image_size=16, dropout_rate=0.1, epochs=2))

Layout of ``model_dir``:
    run_config.json        the settings (a rerun must match them to resume; see RunConfig.check_resumable_from)
    checkpoints/           model, optimizer (incl. step) and noise-stream counters, the newest few
    tensorboard/           scalars (every metric, learning rate) and image grids
    results.json           written at the end: test bits/dim, the settings, steps, wall time
and the SavedModel export under ``export_dir`` (default ``model_dir/export``), one integer version per run.

Resuming: step s of a run always trains on the same batch (see ``data.training_batches``), the noise streams are
counters saved in the checkpoint, and the learning rate is a function of the restored optimizer step, so a run
stopped at a checkpoint and resumed ends with the weights an uninterrupted run would have (bit for bit with
``deterministic=True``).
"""

import os
import sys
import time

import keras
import tensorflow as tf

from gd_bottleneck import data
from gd_bottleneck.export import export_saved_model
from gd_bottleneck.hybrid import HybridVAE
from gd_bottleneck.training import callbacks, checkpoints, files, strategies
from gd_bottleneck.training.run_config import RunConfig


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the newest checkpoint in model_dir is the last good one."""


class TrainingInterrupted(RuntimeError):
    """SIGTERM/SIGINT stopped the run after saving a checkpoint; rerun the same command to resume."""


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


def fit_segments(start_step, steps_per_epoch, epochs):
    """``(initial_epoch, end_epoch, steps_per_epoch, first_step)`` of the ``fit`` calls that finish a run from
    ``start_step``: the rest of a partly done epoch, then whole epochs."""
    epoch, done = divmod(start_step, steps_per_epoch)
    if done:
        yield epoch, epoch + 1, steps_per_epoch - done, start_step
        epoch += 1
    if epoch < epochs:
        yield epoch, epochs, steps_per_epoch, epoch * steps_per_epoch


def _prepare_model_dir(config, chief):
    path = os.path.join(config.model_dir, "run_config.json")
    if os.path.exists(path):
        config.check_resumable_from(files.read_json(path))
    if chief:
        files.write_json_atomically(path, config.to_dict())


def _checkpoint_dir(config, chief):
    """Non-chief workers of a multi-worker run write their (identical) copies to a scratch folder."""
    if chief:
        return os.path.join(config.model_dir, "checkpoints")
    return os.path.join(config.model_dir, "workers", f"pid-{os.getpid()}")


def _hold_out(images, count):
    """``(images[:-count], images[-count:])``: the last ``count`` training images become the validation split."""
    if count == 0:
        return images, None
    if count >= len(images):
        raise ValueError(f"Argument `validation_examples` must be in [0, {len(images)}) (the training split has "
                         f"{len(images)} images). Received: validation_examples={count}")
    return images[:-count], images[-count:]


def train(config, write=print):
    """Runs (or resumes) a training run; returns the results dict also written to ``model_dir/results.json``.

    Raises :class:`TrainingDiverged` on a non-finite loss and :class:`TrainingInterrupted` after SIGTERM/SIGINT;
    both leave the newest good checkpoint in place.
    """
    if not isinstance(config, RunConfig):
        raise TypeError(f"`config` must be a RunConfig. Received: {type(config).__name__}")
    began = time.time()
    if config.deterministic:
        keras.utils.set_random_seed(config.seed)
        tf.config.experimental.enable_op_determinism()
    strategy = strategies.make_strategy(config.strategy, config.cpu_replicas)
    chief = strategies.is_chief()
    _prepare_model_dir(config, chief)

    train_images = data.load_images(config.dataset, "train", config.image_size, config.data_dir, config.manual_dir)
    test_images = data.load_images(config.dataset, "test", config.image_size, config.data_dir, config.manual_dir)
    train_images, validation_images = _hold_out(train_images, config.validation_examples)
    steps_per_epoch = len(train_images) // config.batch_size
    if config.steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.steps_per_epoch)
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size={config.batch_size} exceeds the {len(train_images)} training images.")
    total_steps = steps_per_epoch * config.epochs

    with strategy.scope():
        model = HybridVAE(config.model_config(), **config.model_kwargs())
        schedule_steps = steps_per_epoch * (config.schedule_epochs or config.epochs)
        optimizer = keras.optimizers.Adam(learning_rate_schedule(config, schedule_steps), beta_1=config.adam_beta1,
                                          beta_2=config.adam_beta2, epsilon=config.adam_epsilon)
        model.compile(optimizer=optimizer)
        optimizer = model.optimizer  # a LossScaleOptimizer around Adam with precision="mixed_float16"
        optimizer.build(model.trainable_variables)
        checkpoint = checkpoints.training_checkpoint(model, optimizer)
        manager = tf.train.CheckpointManager(checkpoint, _checkpoint_dir(config, chief),
                                             max_to_keep=config.keep_checkpoints)
        if manager.latest_checkpoint:
            checkpoints.restore(checkpoint, manager.latest_checkpoint)
    start_step = int(optimizer.iterations.numpy())
    write(f"{'Resuming at' if start_step else 'Starting'} step {start_step}/{total_steps}: "
          f"{model.count_params():,} parameters, {strategy.num_replicas_in_sync} replica(s), "
          f"{steps_per_epoch} steps/epoch of {config.batch_size} images, model_dir={config.model_dir}", flush=True)

    guard = callbacks.CheckpointGuard(manager, config.checkpoint_every)
    log_dir = os.path.join(config.model_dir, "tensorboard")
    fit_callbacks = [guard, keras.callbacks.TensorBoard(log_dir, update_freq=config.log_every)]
    bar = config.progress == "bar" or (config.progress == "auto" and sys.stdout.isatty())
    if not bar:
        fit_callbacks.append(callbacks.ProgressLines(total_steps, config.batch_size, config.log_every, write))
    if chief and config.image_summaries:
        fit_callbacks.append(callbacks.ImageSummaries(os.path.join(log_dir, "images"),
                                                      test_images[:config.image_summaries], config.seed))

    for initial_epoch, end_epoch, steps, first_step in fit_segments(start_step, steps_per_epoch, config.epochs):
        batches = data.training_batches(train_images, config.batch_size, steps_per_epoch, config.epochs,
                                        config.seed, first_step)
        model.fit(batches, initial_epoch=initial_epoch, epochs=end_epoch, steps_per_epoch=steps,
                  callbacks=fit_callbacks, verbose=1 if bar else 0, shuffle=False)
        if model.stop_training:
            break
    step = int(optimizer.iterations.numpy())
    if guard.diverged_at is not None:
        raise TrainingDiverged(
            f"The loss became NaN/inf at step {guard.diverged_at}; training stopped. The newest checkpoint "
            f"({manager.latest_checkpoint}) is the last good one. Lower learning_rate or check the data.")
    if guard.signal_received:
        raise TrainingInterrupted(f"{guard.signal_received} received: checkpoint saved at step {step} in "
                                  f"{manager.directory}; rerun the same command to resume.")
    guard.save()

    results = {}
    for split, images in (("validation", validation_images), ("test", test_images)):
        if images is not None:
            evaluation = model.evaluate(data.evaluation_batches(images, config.eval_batch_size or config.batch_size),
                                        return_dict=True, verbose=0)
            results.update({f"{split}_{name}": float(value) for name, value in evaluation.items()})
    results.update(steps=step, total_steps=total_steps, wall_time_s=round(time.time() - began, 1),
                   parameters=model.count_params(), replicas=strategy.num_replicas_in_sync,
                   test_images=len(test_images), validation_images=config.validation_examples, config=config.to_dict(),
                   model_config=config.model_config().to_dict())
    if chief:
        if config.export:
            results["export"] = export_saved_model(model, config.export_base)
        files.write_json_atomically(os.path.join(config.model_dir, "results.json"), results)
    write(f"Test: elbo {results['test_elbo_bpd']:.4f} bits/dim, KL {results['test_kl_bpd']:.4f} bits/dim; "
          f"results in {os.path.join(config.model_dir, 'results.json')}", flush=True)
    return results
