"""Keras callbacks of a training run: checkpoints with a stop guard, progress lines, TensorBoard image grids."""

import json
import math
import os
import signal
import time

import keras
import tensorflow as tf

from gd_bottleneck import sampling
from gd_bottleneck.errors import CheckpointError
from gd_bottleneck.image_grids import image_grid
from gd_bottleneck.training import checkpoints
from gd_bottleneck.training.optimizer import averaged_weights


class WallTime:
    """Wall-clock seconds of a run over all its segments: ``earlier`` (recorded with the checkpoint it resumed
    from) plus the time since this segment began (``began``, a ``time.time()``)."""

    def __init__(self, earlier, began):
        self.earlier, self.began = earlier, began

    def total(self):
        return self.earlier + time.time() - self.began


class CheckpointGuard(keras.callbacks.Callback):
    """Saves a checkpoint every ``every`` steps and when SIGTERM/SIGINT arrives, and stops on a non-finite loss.

    A checkpoint is written only if the loss and every weight are finite, so the newest checkpoint is always a good
    one: after a NaN the run stops with ``diverged_at`` set and the previous checkpoint is kept. A signal sets a flag
    that is handled at the next step boundary (save, then stop), so a checkpoint never holds a half-applied update.
    Checkpoints are numbered by the optimizer step; ``tf.train.CheckpointManager`` writes data files first and
    switches its index file atomically, and keeps at most ``max_to_keep`` of them. A save that fails (a full disk)
    raises :class:`~gd_bottleneck.errors.CheckpointError` and removes its partial files; the previous checkpoint
    stays the newest. ``wall_time`` (a :class:`WallTime`) is recorded with each checkpoint, so a resumed run's
    results count the time of every segment.
    """

    def __init__(self, manager, every, wall_time=None):
        super().__init__()
        self.manager, self.every, self.wall_time = manager, every, wall_time
        self.signal_received = None
        self.diverged_at = None
        self._previous_handlers = {}

    def _on_signal(self, signum, frame):
        del frame
        self.signal_received = signal.Signals(signum).name

    def on_train_begin(self, logs=None):
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous_handlers[signum] = signal.signal(signum, self._on_signal)

    def on_train_end(self, logs=None):
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers.clear()

    def step(self):
        return int(self.model.optimizer.iterations.numpy())

    def save(self):
        """Saves at the current step unless a weight is not finite; returns the path or None."""
        if not all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in self.model.trainable_variables):
            return None
        step = self.step()
        if self.manager.latest_checkpoint and self.manager.latest_checkpoint.endswith(f"-{step}"):
            return self.manager.latest_checkpoint
        try:
            path = self.manager.save(checkpoint_number=step)
            if self.wall_time is not None:
                checkpoints.record_wall_time(self.manager.directory, path, self.wall_time.total())
        except (OSError, tf.errors.OpError) as error:
            checkpoints.remove_unfinished_saves(self.manager.directory, step)
            message = str(error).strip().splitlines()[-1][:200]
            raise CheckpointError(f"Could not write the checkpoint of step {step} in {self.manager.directory} "
                                  f"({type(error).__name__}: {message}); is the disk full? The newest checkpoint is "
                                  f"still {self.manager.latest_checkpoint}; free space and rerun to resume.") from error
        return path

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged_at = self.step()
            self.model.stop_training = True
            return
        if self.signal_received or self.step() % self.every == 0:
            self.save()
        if self.signal_received:
            self.model.stop_training = True


class ProgressLines(keras.callbacks.Callback):
    """One line every ``every`` steps: step, images/s over the interval, elapsed time and an ETA, and the running
    metrics (bits/dim). The ETA extrapolates this segment's training rate (epoch-end work excluded) to the
    remaining steps, so it leaves out the final evaluation and export."""

    def __init__(self, total_steps, global_batch, every, write=print):
        super().__init__()
        self.total_steps, self.global_batch, self.every, self.write = total_steps, global_batch, every, write
        self._mark = None
        self._trained_s, self._trained_steps, self._began = 0.0, 0, None

    def on_epoch_end(self, epoch, logs=None):
        self._mark = None  # the rate measures training only, not epoch-end work (image grids, checkpoints)

    def on_train_batch_begin(self, batch, logs=None):
        if self._began is None:
            self._began = time.perf_counter()
        if self._mark is None:
            self._mark = (int(self.model.optimizer.iterations.numpy()), time.perf_counter())

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step % self.every and step != self.total_steps:
            return
        first_step, start = self._mark
        seconds = max(time.perf_counter() - start, 1e-9)
        self._trained_s += seconds
        self._trained_steps += step - first_step
        rate = (step - first_step) * self.global_batch / seconds
        eta = (self.total_steps - step) * self._trained_s / max(self._trained_steps, 1)
        metrics = "  ".join(f"{name} {float(value):.4f}" for name, value in sorted((logs or {}).items()))
        self.write(f"step {step}/{self.total_steps}  {rate:.1f} images/s  elapsed "
                   f"{clock(time.perf_counter() - self._began)}  eta {clock(eta)}  {metrics}", flush=True)
        self._mark = (step, time.perf_counter())


def clock(seconds):
    """``[h:]mm:ss`` of a duration in seconds."""
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


class ImageSummaries(keras.callbacks.Callback):
    """TensorBoard image grids at the end of every epoch: data, reconstructions (x ~ p(x|z), z ~ q(z|data)) and
    samples from the prior, drawn with fixed seeds so grids are comparable across epochs."""

    def __init__(self, log_dir, images, seed):
        super().__init__()
        self.writer = tf.summary.create_file_writer(log_dir)
        self.images, self.seed = images, tf.constant([seed, 7], tf.int32)

    def on_epoch_end(self, epoch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        count = len(self.images)
        reconstructions = sampling.reconstructions(self.model, self.images, self.seed)
        samples = sampling.cached_samples(self.model, sampling.prior_latents(self.model, self.seed, count),
                                             self.seed)
        with self.writer.as_default(step=step):
            for name, grid in (("data", self.images), ("reconstructions", reconstructions), ("samples", samples)):
                tf.summary.image(name, image_grid(grid))
        self.writer.flush()


class LearningCurve(keras.callbacks.Callback):
    """Evaluates the test-mode ELBO and KL (bits/dim) of held-out images at ``points`` evenly spaced steps, and
    appends ``{"step", "elbo_bpd", "kl_bpd", "wall_time_s"}`` lines to ``path`` (JSON lines).

    Why not ``model.evaluate``: called inside ``fit`` it would reset the metrics the training step accumulates. The
    held-out figures are computed directly, batch by batch, with the same fixed evaluation noise as ``evaluate``, so
    the last point equals the final evaluation. A resumed run appends its points after the earlier ones; readers
    keep the last line per step (:func:`read_curve`).
    """

    def __init__(self, images, batch_size, total_steps, points, path, wall_time):
        super().__init__()
        self.images, self.batch_size, self.path, self.wall_time = images, batch_size, path, wall_time
        self.steps = {round(total_steps * (index + 1) / points) for index in range(points)}
        self._figures = None

    def _evaluate(self):
        if self._figures is None:
            self._figures = tf.function(lambda batch: self.model.elbo(batch))
        sums = {"elbo_bpd": 0.0, "kl_bpd": 0.0}
        for start in range(0, len(self.images), self.batch_size):
            figures = self._figures(tf.constant(self.images[start:start + self.batch_size]))
            for name in sums:
                sums[name] += float(tf.reduce_sum(figures[name]))
        return {name: value / len(self.images) for name, value in sums.items()}

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step not in self.steps:
            return
        with averaged_weights(self.model):  # what the run's evaluation will report
            figures = self._evaluate()
        point = {"step": step, **figures, "wall_time_s": round(self.wall_time.total(), 1)}
        with open(self.path, "a") as stream:
            stream.write(json.dumps(point) + "\n")


def read_curve(path):
    """The points of a ``curve.jsonl``, one per step (the last written wins: a resumed run redoes steps), by step."""
    points = {}
    if os.path.exists(path):
        with open(path) as stream:
            for line in stream:
                if line.strip():
                    point = json.loads(line)
                    points[point["step"]] = point
    return [points[step] for step in sorted(points)]
