"""Sampling speed: the cached sampler (Fast PixelCNN++) against the reference sampler, in the same run.

    python -m benchmarks.sampling              # small() 32x32, 16 images: both samplers; paper() 32x32: cached
    python -m benchmarks.sampling --quick      # small() 32x32, 4 images, one JSON line

Both samplers draw the same images from the prior with the same seed; the run checks they are identical. Tracing is
excluded (each sampler is traced before it is timed), and the cached sampler is timed on its second run. The
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

from gd_bottleneck import HybridVAE, sampling
from gd_bottleneck.config import PRESETS


def context_dependent_weights(model, scale=0.05, seed=0):
    """Adds N(0, scale^2) noise to the weights of everything that shapes p(x | z), in place; returns ``model``."""
    rng = np.random.default_rng(seed)
    layers = [model.pixelcnn, model.decoder, model.bottleneck_layer, model.mixer_hidden, model.mixer_output]
    for weight in [weight for layer in layers for weight in layer.trainable_weights]:
        weight.assign(weight.numpy() + rng.normal(0.0, scale, weight.shape).astype(np.float32))
    return model


def _timed(function, *args, warm=True):
    """``(result, seconds)`` of one call, traced beforehand; ``warm`` also runs it once untimed first.

    The first run of a traced graph includes TensorFlow's one-time graph optimization (about 1-2 s for these
    loops). The reference is too slow to run twice, so its timing includes it: the ratio errs in its favour.
    """
    function.get_concrete_function(*args)
    if warm:
        function(*args)
    start = time.perf_counter()
    result = function(*args).numpy()
    return result, time.perf_counter() - start


def measure(preset, image_size, num_images, reference=True, seed=(1, 2)):
    model = context_dependent_weights(HybridVAE(PRESETS[preset](image_size), bottleneck="gaussian_dropout",
                                                dropout_rate=0.15, seed=0))
    seed = tf.constant(seed, tf.int32)
    z = sampling.prior_latents(model, seed, num_images)
    cached, cached_seconds = _timed(sampling.cached_samples, model, z, seed)
    result = {"preset": preset, "image_size": image_size, "num_images": num_images,
              "cached_images_per_s": round(num_images / cached_seconds, 4),
              "cached_s_per_image": round(cached_seconds / num_images, 3),
              # the loop's cost per generated pixel position (all images of the batch at once), in milliseconds
              "cached_ms_per_pixel_step": round(1000 * cached_seconds / image_size**2, 3)}
    if reference:
        drawn, reference_seconds = _timed(sampling.reference_samples, model, z, seed, warm=False)
        result.update(reference_images_per_s=round(num_images / reference_seconds, 5),
                      ratio=round(reference_seconds / cached_seconds, 1),
                      identical=bool(np.array_equal(drawn, cached)),
                      mismatched_subpixels=int(np.sum(drawn != cached)))
    else:
        images = tf.cast(cached, tf.float32)
        one_pass = tf.function(lambda: model.decode_params(z, images))
        one_pass()
        start = time.perf_counter()
        one_pass().numpy()
        pass_seconds = time.perf_counter() - start
        estimate = pass_seconds * image_size * image_size
        result.update(reference_s_per_image_estimated=round(estimate / num_images, 1),
                      ratio_estimated=round(estimate / cached_seconds, 1))
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
    args = parser.parse_args()
    if args.num_images is not None and args.num_images < 1:
        parser.error(f"--num_images must be >= 1. Received: {args.num_images}")
    num_images = args.num_images or (4 if args.quick else 16)
    presets = ["small"] if args.quick else args.presets.split(",")
    unknown = set(presets) - {"small", "paper"}
    if unknown:
        parser.error(f"--presets must name small and/or paper. Received: {sorted(unknown)}")
    if "small" in presets:
        print(json.dumps(measure("small", args.image_size, num_images, reference=not args.cached_only)), flush=True)
    if "paper" in presets:
        print(json.dumps(measure("paper", args.image_size, args.paper_images, reference=False)), flush=True)


if __name__ == "__main__":
    main()
