"""Training and evaluation throughput of HybridVAE presets on this machine (images/s), with peak memory.

    python -m benchmarks.hybrid_training                       # small() and paper() at 32x32
    python -m benchmarks.hybrid_training --presets=small --image_size=16 --steps=20
    python -m benchmarks.hybrid_training --precision=mixed_bfloat16       # 16-bit networks (ModelConfig.precision)

Each preset: build, compile (Adam), warm up (tracing and the first steps are excluded), then time ``--steps``
training steps with ``model.fit`` and as many evaluation steps with ``model.evaluate`` on synthetic uint8 images.
Prints one JSON line per preset.
"""

import argparse
import json
import resource
import time

import keras
import numpy as np

from gd_bottleneck import HybridVAE
from gd_bottleneck.config import PRESETS
from gd_bottleneck.precision import PRECISIONS
from gd_bottleneck.training.optimizer import FusedAdam

DEFAULT_BATCH = {"small": 16, "paper": 4}


OPTIMIZERS = {"fused": lambda: FusedAdam(1e-4), "keras": lambda: keras.optimizers.Adam(1e-4)}


def measure(preset, image_size, batch_size, steps, warmup, precision="float32", optimizer="fused"):
    config = PRESETS[preset](image_size).replace(precision=precision)
    model = HybridVAE(config, bottleneck="gaussian_dropout", dropout_rate=0.15, seed=0)
    model.compile(optimizer=OPTIMIZERS[optimizer]())
    images = np.random.default_rng(0).integers(0, 256, size=(batch_size * steps, image_size, image_size, 3),
                                               dtype=np.uint8)
    start = time.perf_counter()
    model.fit(images[:batch_size * warmup], batch_size=batch_size, epochs=1, verbose=0)
    model.evaluate(images[:batch_size], batch_size=batch_size, verbose=0)
    warmup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    model.fit(images, batch_size=batch_size, epochs=1, verbose=0)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    model.evaluate(images, batch_size=batch_size, verbose=0)
    eval_seconds = time.perf_counter() - start
    return {"preset": preset, "precision": precision, "optimizer": optimizer, "image_size": image_size,
            "batch_size": batch_size, "steps": steps,
            "parameters": model.count_params(),
            "train_images_per_s": round(batch_size * steps / train_seconds, 3),
            "eval_images_per_s": round(batch_size * steps / eval_seconds, 3),
            "warmup_s": round(warmup_seconds, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="small,paper", help="comma-separated: " + ",".join(PRESETS))
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=None, help="default: small 16, paper 4")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (after warm-up)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps, including tracing")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32", help="the networks' dtype policy")
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="fused",
                        help="the trainer's FusedAdam (TensorFlow's ResourceApplyAdam) or Keras' Adam")
    args = parser.parse_args()
    for preset in args.presets.split(","):
        if preset not in PRESETS:
            parser.error(f"--presets: unknown preset {preset!r}; choose from {sorted(PRESETS)}")
        batch = args.batch_size or DEFAULT_BATCH[preset]
        print(json.dumps(measure(preset, args.image_size, batch, args.steps, args.warmup, args.precision,
                                 args.optimizer)), flush=True)


if __name__ == "__main__":
    main()
