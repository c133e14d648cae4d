"""Draw samples (or reconstructions) from a trained model and write them as a PNG grid.

    python -m trainers.sample --model_dir=runs/demo --num=64 --out=samples.png
    python -m trainers.sample --model_dir=runs/demo --num=16 --reconstruct --out=recon.png   # test images -> z -> x
    python -m trainers.sample --model_dir=runs/demo --num=32 --rows_share_z --out=per_z.png  # 4 z, 8 samples each

Uses the newest checkpoint and the cached sampler; the same --seed gives the same images. The paper's Figure 3
shows such grids for different dropout rates and KL weights.
"""

import numpy as np
import tensorflow as tf
from absl import app, flags

from gd_bottleneck import cli, data, sampling
from gd_bottleneck.image_grids import write_png_grid

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "A training run's folder (run_config.json + checkpoints/) (required).")
flags.DEFINE_integer("num", 64, "How many images, in [1, 1024].", lower_bound=1, upper_bound=1024)
flags.DEFINE_string("out", "samples.png", "Output PNG path.")
flags.DEFINE_integer("seed", 0, "Sampling seed, in [0, 2**31).", lower_bound=0, upper_bound=2**31 - 1)
flags.DEFINE_integer("columns", 8, "Images per row of the grid, >= 1.", lower_bound=1)
flags.DEFINE_bool("reconstruct", False, "Reconstruct the first --num test images (left: data, right: samples).")
flags.DEFINE_bool("rows_share_z", False, "Every row of the grid shares one z ~ N(0, I) and varies only the "
                  "decoder's noise: what stays fixed along a row is what the latents hold (the paper's Figure 3).")


def main(argv):
    if FLAGS.reconstruct and FLAGS.rows_share_z:
        raise app.UsageError("Flags --reconstruct and --rows_share_z exclude each other.")
    model, config, checkpoint = cli.trained_model_for_png(FLAGS.model_dir, FLAGS.out)
    seed = tf.constant([FLAGS.seed, 0], tf.int32)
    if FLAGS.reconstruct:
        originals = data.load_images(config.dataset, "test", config.image_size, config.data_dir,
                                     config.manual_dir)[:FLAGS.num]
        images = sampling.reconstructions(model, originals, seed).numpy()
        images = np.concatenate([originals, images], axis=2)  # each cell: data | reconstruction
    elif FLAGS.rows_share_z:
        z = sampling.row_shared_latents(model, seed, FLAGS.num, FLAGS.columns)
        images = sampling.cached_samples(model, z, seed).numpy()  # image b's decoder noise is keyed by (seed, b)
    else:
        images = sampling.cached_samples(model, sampling.prior_latents(model, seed, FLAGS.num), seed).numpy()
    write_png_grid(FLAGS.out, images, FLAGS.columns)
    kind = "reconstructions" if FLAGS.reconstruct else "samples (rows share z)" if FLAGS.rows_share_z else "samples"
    print(f"Wrote {len(images)} {kind} from {checkpoint} "
          f"to {FLAGS.out}")


def run():
    """Console-script entry point (see setup.cfg)."""
    cli.run(main)


if __name__ == "__main__":
    run()
