"""Write the embedded dataset's entropy floor (the best NLL any model can reach) as JSON, for the frontier plot.

    python -m studies.figure2_8x8.entropy_floor --image_size=16 --out=studies/figure2_8x8/results/entropy_floor.json

See gd_bottleneck/data/entropy_floor.py for what is computed and why it bounds every model's ELBO.
"""

import json

from absl import app, flags

from gd_bottleneck import cli
from gd_bottleneck.data.entropy_floor import entropy_floor
from gd_bottleneck.training import files

FLAGS = flags.FLAGS
flags.DEFINE_integer("image_size", 16, "Image side of the shapes dataset: 8, 16 or 32.")
flags.DEFINE_enum("split", "test", ["train", "test"], "Which split's scenes.")
flags.DEFINE_integer("images", 2000, "How many scenes of the split (the test split has 2,000).", lower_bound=2)
flags.DEFINE_string("out", None, "Where to write the JSON (printed either way).")


def main(argv):
    if FLAGS.image_size not in (8, 16, 32):
        raise app.UsageError(f"Flag --image_size must be 8, 16 or 32. Received: {FLAGS.image_size}")
    figures = entropy_floor(FLAGS.split, FLAGS.image_size, FLAGS.images)
    figures["command"] = (f"python -m studies.figure2_8x8.entropy_floor --image_size={FLAGS.image_size} "
                          f"--split={FLAGS.split} --images={FLAGS.images}")
    if FLAGS.out:
        files.write_json_atomically(FLAGS.out, figures)
    print(json.dumps(figures, indent=2))


def run():
    """Console-script entry point (see setup.cfg)."""
    cli.run(main)


if __name__ == "__main__":
    run()
