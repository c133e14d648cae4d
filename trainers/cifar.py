"""Train a hybrid VAE + PixelCNN++ with an information bottleneck (Rey & Mnih) and evaluate it in bits/dim.

    python -m trainers.cifar --flagfile=gd.flags                      # the paper's Gaussian dropout run
    python -m trainers.cifar --flagfile=demo.flags                    # a few minutes on a laptop CPU
    python -m trainers.cifar --flagfile=gd.flags --model_dir=runs/gd2 --dropout_rate=0.05

Rerunning the same command with the same --model_dir resumes from the newest checkpoint. Flags after a --flagfile
override it. Every flag is a field of gd_bottleneck.training.RunConfig (same name); model architecture flags
(--pixelcnn_filters, ...) override fields of the --model_preset.
"""

import sys

from absl import app, flags, logging

from gd_bottleneck import cli
from gd_bottleneck.config import ModelConfig
from gd_bottleneck.precision import PRECISIONS
from gd_bottleneck.training import RunConfig, TrainingInterrupted, train
from gd_bottleneck.training.run_config import LR_SCHEDULES, STRATEGIES

FLAGS = flags.FLAGS
MODEL_FIELDS = [field for field in ModelConfig.__dataclass_fields__.values() if field.name != "image_size"]

flags.DEFINE_string("model_dir", None, "Where checkpoints, TensorBoard logs and results.json go (required).")
flags.DEFINE_enum("dataset", "shapes", ["shapes", "shapes_tiny", "cifar10"], "Training data: the embedded procedural 'shapes' "
                  "dataset, or CIFAR-10 through tfds.")
flags.DEFINE_string("data_dir", None, "tfds data directory (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).")
flags.DEFINE_string("manual_dir", None, "Folder holding cifar-10-binary.tar.gz for offline CIFAR-10 preparation.")
flags.DEFINE_integer("image_size", 32, "Image side in pixels (cifar10: 32; shapes: 32, 16 or 8).")
flags.DEFINE_enum("model_preset", "small", ["small", "paper"], "Model size: the paper's (appendix B) or small.")
flags.DEFINE_enum("bottleneck", "gaussian_dropout", ["gaussian_dropout", "variational", "none"],
                  "Information bottleneck on the PixelCNN++ output v.")
flags.DEFINE_float("dropout_rate", None, "Gaussian dropout rate p in [0, 1); noise stddev sqrt(p / (1 - p)).")
flags.DEFINE_float("beta", None, "Weight (>= 0) of the variational bottleneck's KL penalty.")
flags.DEFINE_float("aux_weight", 0.0, "Weight (>= 0) of the auxiliary non-autoregressive decoder's NLL; 0 = none.")
flags.DEFINE_integer("batch_size", 64, "Global batch size (over all replicas).")
flags.DEFINE_integer("eval_batch_size", None, "Test-set batch size (default: batch_size).")
flags.DEFINE_integer("epochs", 1, "Training epochs.")
flags.DEFINE_integer("schedule_epochs", None, "Epochs over which the learning rate anneals (>= --epochs; default: "
                     "--epochs). Set it to extend a run later: --epochs may then change on resume.")
flags.DEFINE_integer("steps_per_epoch", None, "Cap on the steps of an epoch (default: the whole train split).")
flags.DEFINE_integer("validation_examples", 0, "Hold out this many of the last training images as a validation "
                     "split, evaluated at the end (validation_* in results.json); 0: none.")
flags.DEFINE_integer("curve_points", 0, "Evaluate the held-out ELBO and KL this many times during training, evenly "
                     "spaced (validation split if any, else test), into model_dir/curve.jsonl; 0: only at the end.")
flags.DEFINE_float("learning_rate", 1e-4, "Adam learning rate at the first step.")
flags.DEFINE_float("final_learning_rate", 4e-6, "Learning rate reached at the last step.")
flags.DEFINE_enum("lr_schedule", "exponential", list(LR_SCHEDULES), "How the rate anneals (exponential: geometric).")
flags.DEFINE_float("adam_beta1", 0.9, "Adam beta_1.")
flags.DEFINE_float("adam_beta2", 0.999, "Adam beta_2.")
flags.DEFINE_float("adam_epsilon", 1e-8, "Adam epsilon.")
flags.DEFINE_integer("seed", 0, "Seed of the weights, the noise streams and the data order, in [0, 2**31).")
flags.DEFINE_bool("export", True, "Write a SavedModel version at the end (--noexport skips it).")
flags.DEFINE_string("export_dir", None, "SavedModel base folder; versions 1, 2, ... (default: saved_models/<run name>, "
                    "the run name being --model_dir's last folder).")
flags.DEFINE_integer("checkpoint_every", 500, "Save a checkpoint every this many steps.")
flags.DEFINE_integer("keep_checkpoints", 3, "How many checkpoints to keep.")
flags.DEFINE_enum("strategy", "default", list(STRATEGIES), "tf.distribute strategy; multi_worker reads TF_CONFIG.")
flags.DEFINE_integer("cpu_replicas", 0, "Split the host CPU into this many logical devices (testing replicas).")
flags.DEFINE_integer("log_every", 50, "Progress line and TensorBoard scalars every this many steps.")
flags.DEFINE_enum("progress", "auto", ["auto", "bar", "lines"], "Keras progress bar or log lines (auto: bar on a tty).")
flags.DEFINE_integer("image_summaries", 8, "Images per TensorBoard grid of samples/reconstructions; 0 disables.")
flags.DEFINE_bool("deterministic", False, "Enable TF op determinism (bitwise-reproducible runs, slower).")
for _field in MODEL_FIELDS:
    if _field.name == "precision":
        flags.DEFINE_enum("precision", None, list(PRECISIONS), "Compute dtype of the networks (the likelihood stays "
                          "float32): mixed_bfloat16 for AMX CPUs, TPUs and recent GPUs, mixed_float16 for GPUs.")
    else:
        (flags.DEFINE_float if _field.type is float else flags.DEFINE_integer)(
            _field.name, None, f"Override the preset's ModelConfig.{_field.name}.")


def run_settings_from_flags():
    """The RunConfig fields the flags set, as a dict (not validated: tuning.search completes it per trial)."""
    names = [name for name in RunConfig.__dataclass_fields__ if name != "model_overrides"]
    overrides = {field.name: FLAGS[field.name].value for field in MODEL_FIELDS if FLAGS[field.name].value is not None}
    return {"model_overrides": overrides, **{name: FLAGS[name].value for name in names}}


def run_config_from_flags():
    """The RunConfig the flags describe (``ValueError`` naming the flag on a bad value)."""
    return RunConfig(**run_settings_from_flags())


def main(argv):
    logging.set_verbosity(logging.WARNING)  # TF's INFO chatter (checkpoint sharding, ...) hides the progress lines
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected positional arguments: {argv[1:]}")
    if FLAGS.model_dir is None:
        raise app.UsageError("Flag --model_dir is required.")
    try:
        config = run_config_from_flags()
    except ValueError as error:
        raise app.UsageError(str(error).replace("Argument `", "Flag `--"))
    try:
        train(config)
    except TrainingInterrupted as stop:  # not an error: the run resumes when rerun
        print(stop, file=sys.stderr)
        sys.exit(130)


def run():
    """Console-script entry point (see setup.cfg)."""
    cli.run(main)


if __name__ == "__main__":
    run()
