"""Cost of the likelihood bounds (gd_bottleneck/evaluation.py) in images/s, per (K z samples, S noise draws).

    python -m benchmarks.bounds                                   # small() at 16x16, one thread, the grid below
    python -m benchmarks.bounds --grid=1x1,16x16 --threads=0      # TensorFlow's default threads

For each (K, S): trace and run one batch (untimed), then time ``--batches`` batches of ``--batch_size`` synthetic
uint8 images with a Gaussian dropout model (the costlier kind: its noise is marginalised; the variational
bottleneck adds two small heads). Prints one JSON line per setting, with the minutes a 2,000-image test set takes.
"""

import argparse
import json
import time

import numpy as np
import tensorflow as tf

from gd_bottleneck import HybridVAE
from gd_bottleneck.config import PRESETS
from gd_bottleneck.evaluation import LikelihoodBounds

DEFAULT_GRID = "1x1,1x16,16x1,16x16,128x1,128x16"


def measure(model, z_samples, noise_samples, batch_size, batches):
    bounds = LikelihoodBounds(model, z_samples, noise_samples)
    size = model.config.image_size
    images = tf.constant(np.random.default_rng(0).integers(0, 256, (batch_size, size, size, 3), dtype=np.uint8))
    bounds(images)  # tracing
    start = time.perf_counter()
    for _ in range(batches):
        bounds(images)["iwae_bpd"].numpy()
    seconds = time.perf_counter() - start
    rate = batch_size * batches / seconds
    return {"z_samples": z_samples, "noise_samples": noise_samples, "images_per_s": round(rate, 3),
            "minutes_per_2000_images": round(2000 / rate / 60, 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small", choices=sorted(PRESETS))
    parser.add_argument("--image_size", type=int, default=16)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=2, help="timed batches per setting (after one untimed)")
    parser.add_argument("--grid", default=DEFAULT_GRID, help="comma-separated KxS settings")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (0: TensorFlow's default)")
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    try:
        grid = [tuple(int(part) for part in item.split("x")) for item in args.grid.split(",")]
    except ValueError:
        parser.error(f"--grid must be comma-separated KxS pairs such as 16x16. Received: {args.grid!r}")
    model = HybridVAE(PRESETS[args.preset](args.image_size), bottleneck="gaussian_dropout", dropout_rate=0.5, seed=0)
    for z_samples, noise_samples in grid:
        result = measure(model, z_samples, noise_samples, args.batch_size, args.batches)
        print(json.dumps({"preset": args.preset, "image_size": args.image_size, "batch_size": args.batch_size,
                          "threads": args.threads, **result}), flush=True)


if __name__ == "__main__":
    main()
