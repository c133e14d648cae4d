"""Export a trained model as the next SavedModel version for TF Serving (signatures: sample, reconstruct, encode, elbo).

    python -m trainers.export --model_dir=runs/demo          # -> saved_models/demo-<hash>/<next version>

Writes ``<export_dir>/<next integer version>/`` atomically from the newest checkpoint in ``--model_dir``; existing
versions are never overwritten, and a model folder holding another run's versions is refused unless ``--force``
(gd_bottleneck/export.py). Prints the version's path.
"""

from absl import app, flags

from gd_bottleneck import cli
from gd_bottleneck.export import export_saved_model
from gd_bottleneck.training.checkpoints import load_trained_model
from gd_bottleneck.training.run_config import default_export_base, run_identity

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "A training run's folder (run_config.json + checkpoints/) (required).")
flags.DEFINE_string("export_dir", None, "SavedModel base folder (default: saved_models/<run name>-<hash of the run "
                    "folder's path>).")
flags.DEFINE_bool("force", False, "Export even into a model folder that holds another run's versions.")


def main(argv):
    if not FLAGS.model_dir:
        raise app.UsageError("Flag --model_dir is required.")
    try:
        model, config, checkpoint = load_trained_model(FLAGS.model_dir)
    except FileNotFoundError as error:
        raise app.UsageError(str(error).replace("`model_dir`", "--model_dir"))
    config = config.__class__.from_dict({**config.to_dict(), "model_dir": FLAGS.model_dir})  # where it is now
    path = export_saved_model(model, FLAGS.export_dir or default_export_base(FLAGS.model_dir), run_identity(config),
                              force=FLAGS.force)
    print(f"Exported {checkpoint} to {path}")


def run():
    """Console-script entry point (see setup.cfg)."""
    cli.run(main)


if __name__ == "__main__":
    run()
