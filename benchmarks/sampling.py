"""Sampling speed: the cached sampler (Fast PixelCNN++) against the reference sampler, in the same run.

    python -m benchmarks.sampling              # small() 32x32, 16 images: both samplers; paper() 32x32: cached
    python -m benchmarks.sampling --quick      # small() 32x32, 4 images, one JSON line

Both samplers draw the same images from the prior with the same seed; the run checks they are identical (one full
run of each). The ratio comes from ``--pairs`` interleaved pairs after warm-up (benchmarks/paired.py): a whole cached
run against the reference's first ``--reference_rows`` rows, scaled to the whole image (every reference pass costs
the same, so its prefix gives its cost per pixel step). ``ratio`` is the median of the per-pair ratios,
``ratio_low``/``ratio_high`` its distribution-free 95% interval; a goal counts as met only when ``ratio_low``
clears it. Tracing is excluded (each sampler is traced and run once before it is timed). The
weights are the initial ones plus Gaussian noise, so that
every pixel's distribution depends strongly on its context (a fresh model is close to flat, which would make the
identity check weak); speed does not depend on the weights. For the paper() preset the reference would take hours,
so its time is estimated from one timed full pass of the network times H * W.
"""

import argparse
import json
import resource
import time

import numpy as np
import tensorflow as tf

from benchmarks import paired
from gd_bottleneck import HybridVAE, sampling
from gd_bottleneck.config import PRESETS
from gd_bottleneck.precision import PRECISIONS


def context_dependent_weights(model, scale=0.05, seed=0):
    """Adds N(0, scale^2) noise to the weights of everything that shapes p(x | z), in place; returns ``model``."""
    rng = np.random.default_rng(seed)
    layers = [model.pixelcnn, model.decoder, model.bottleneck_layer, model.mixer_hidden, model.mixer_output]
    for weight in [weight for layer in layers for weight in layer.trainable_weights]:
        weight.assign(weight.numpy() + rng.normal(0.0, scale, weight.shape).astype(np.float32))
    return model


def _seconds(function, *args, **kwargs):
    start = time.perf_counter()
    function(*args, **kwargs).numpy()
    return time.perf_counter() - start


def _cached_figures(num_images, image_size, cached_seconds):
    return {"cached_images_per_s": round(num_images / cached_seconds, 4),
            "cached_s_per_image": round(cached_seconds / num_images, 3),
            # the loop's cost per generated pixel position (all images of the batch at once), in milliseconds
            "cached_ms_per_pixel_step": round(1000 * cached_seconds / image_size**2, 3)}


def measure(preset, image_size, num_images, reference=True, seed=(1, 2), pairs=9, reference_rows=2,
            precision="float32"):
    config = PRESETS[preset](image_size).replace(precision=precision)
    model = context_dependent_weights(HybridVAE(config, bottleneck="gaussian_dropout", dropout_rate=0.15, seed=0))
    seed = tf.constant(seed, tf.int32)
    z = sampling.prior_latents(model, seed, num_images)
    cached = sampling.cached_samples(model, z, seed).numpy()  # traced and run once: warm
    result = {"preset": preset, "image_size": image_size, "num_images": num_images, "precision": precision}
    if reference:
        drawn = sampling.reference_samples(model, z, seed).numpy()
        prefix = reference_rows * image_size
        cached_seconds, prefix_seconds = paired.interleaved_seconds(
            lambda: sampling.cached_samples(model, z, seed).numpy(),
            lambda: sampling.reference_samples(model, z, seed, num_pixels=prefix).numpy(), pairs)
        reference_seconds = [t * image_size**2 / prefix for t in prefix_seconds]  # the whole image's
        summary = paired.ratio_summary(reference_seconds, cached_seconds)
        result.update(_cached_figures(num_images, image_size, summary["denominator_median_s"]),
                      reference_images_per_s=round(num_images / summary["numerator_median_s"], 5),
                      **{key: round(summary[key], 2) for key in ("ratio", "ratio_low", "ratio_high")},
                      ratio_coverage=summary["ratio_coverage"], pairs=pairs, reference_rows=reference_rows,
                      identical=bool(np.array_equal(drawn, cached)),
                      mismatched_subpixels=int(np.sum(drawn != cached)),
                      max_subpixel_difference=int(np.abs(drawn.astype(np.int32) - cached).max()))
    else:
        result.update(_cached_figures(num_images, image_size, _seconds(sampling.cached_samples, model, z, seed)))
        images = tf.cast(cached, tf.float32)
        one_pass = tf.function(lambda: model.decode_params(z, images))
        one_pass()
        start = time.perf_counter()
        one_pass().numpy()
        pass_seconds = time.perf_counter() - start
        estimate = pass_seconds * image_size * image_size
        result.update(reference_s_per_image_estimated=round(estimate / num_images, 1),
                      ratio_estimated=round(estimate / num_images / result["cached_s_per_image"], 1))
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small() only, 4 images, one JSON line")
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--num_images", type=int, default=None, help="default: 4 with --quick, else 16")
    parser.add_argument("--paper_images", type=int, default=4, help="images for the paper() preset (cached only)")
    parser.add_argument("--presets", default="small,paper", help="which of small,paper to run (not with --quick)")
    parser.add_argument("--cached_only", action="store_true", help="time the cached sampler only (no reference run)")
    parser.add_argument("--pairs", type=int, default=9, help="interleaved cached/reference pairs for the ratio (>= 6)")
    parser.add_argument("--reference_rows", type=int, default=2, help="rows of the reference timed per pair")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32", help="the model's networks' precision")
    args = parser.parse_args()
    if args.pairs < paired.MIN_PAIRS:
        parser.error(f"--pairs must be >= {paired.MIN_PAIRS}. Received: {args.pairs}")
    if not 1 <= args.reference_rows <= args.image_size:
        parser.error(f"--reference_rows must be in [1, {args.image_size}]. Received: {args.reference_rows}")
    if args.num_images is not None and args.num_images < 1:
        parser.error(f"--num_images must be >= 1. Received: {args.num_images}")
    num_images = args.num_images or (4 if args.quick else 16)
    presets = ["small"] if args.quick else args.presets.split(",")
    unknown = set(presets) - {"small", "paper"}
    if unknown:
        parser.error(f"--presets must name small and/or paper. Received: {sorted(unknown)}")
    if "small" in presets:
        print(json.dumps(measure("small", args.image_size, num_images, reference=not args.cached_only,
                                 pairs=args.pairs, reference_rows=args.reference_rows, precision=args.precision)),
              flush=True)
    if "paper" in presets:
        print(json.dumps(measure("paper", args.image_size, args.paper_images, reference=False,
                                 precision=args.precision)), flush=True)


if __name__ == "__main__":
    main()
