"""Train a hybrid VAE + PixelCNN++ with an information bottleneck (Rey & Mnih) and evaluate it in bits/dim.

    python -m trainers.cifar --flagfile=gd.flags                      # the paper's Gaussian dropout run
    python -m trainers.cifar --flagfile=demo.flags                    # a few minutes on a laptop CPU
    python -m trainers.cifar --flagfile=gd.flags --model_dir=runs/gd2 --dropout_rate=0.05

Rerunning the same command with the same --model_dir resumes from the newest checkpoint. Flags after a --flagfile
override it. Every flag is a field of gd_bottleneck.training.RunConfig (same name, default and help text: the flags
are generated from it in trainers/run_flags.py); model architecture flags (--pixelcnn_filters, ...) override fields
of the --model_preset.
"""

import sys

from absl import app, flags

from gd_bottleneck import cli
from gd_bottleneck.training import TrainingInterrupted, train
from trainers import run_flags

FLAGS = flags.FLAGS
run_flags.define()  # one flag per RunConfig field (and ModelConfig override), generated: trainers/run_flags.py
flags.adopt_module_key_flags(run_flags)  # listed by --helpshort as this program's own


def main(argv):
    if FLAGS.model_dir is None:
        raise app.UsageError("Flag --model_dir is required.")
    try:
        config = run_flags.run_config()
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
