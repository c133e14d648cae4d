"""Training throughput of our PixelCNN++ against TensorFlow Probability's ``tfd.PixelCNN``, side by side.

    python -m benchmarks.train_throughput            # the paper's PixelCNN++ (160 filters, 5 x 3), the hybrid presets
    python -m benchmarks.train_throughput --quick    # a small architecture, one JSON line (about a minute)
    python -m benchmarks.train_throughput --quick --pairs=15     # a tighter interval
    python -m benchmarks.train_throughput --bf16     # also our step with bfloat16 networks (ModelConfig.precision)

Both models are the same architecture: ``filters`` channels in both streams, ``resnets`` gated resnets per stage,
``stages`` resolutions, binary dropout, a mixture of ``components`` discretized logistics with conditional colour
channels, the same receptive fields (TFP's masked 3x3/3x3 kernels keep 2x3 and 2x2 taps, our shifted convolutions
are 2x3 and 2x2), weight normalisation on both sides or on neither (``--weight_norm``: ours
``PixelCNN(weight_norm=True)``, TFP's ``use_weight_norm=True``; data-dependent initialisation is a one-time
pass, off on both sides here) and no conditioning (ours is built with ``conditional=False``; docs/benchmarks.md
says how the figures before that compare). A training step is forward,
backward and an Adam update (each framework's own Adam: ours is the trainer's ``FusedAdam``, TFP's is tf_keras'
Adam, both on TensorFlow's fused ``ResourceApplyAdam``), on the same uint8 batch, in a ``tf.function``.

The ratio (ours / reference images per second) comes from one process that holds both steps and alternates them in
blocks of ``--steps`` steps, ``--pairs`` pairs after warm-up (benchmarks/paired.py): ``ratio`` is the median of the
per-pair ratios, ``ratio_low``/``ratio_high`` its distribution-free 95% interval, ``ours_images_per_s`` and
``reference_images_per_s`` each side's median block. A goal counts as met only when ``ratio_low`` clears it. The
other figures (FLOPs, peak RSS, XLA, bfloat16) run each side in its own process (so peak RSS is its own), warm up,
then time ``--steps`` steps, median of ``--repeats`` timings.

FLOP utilisation: the floating-point operations of our step (forward + backward, counted by TensorFlow's graph
profiler: convolutions, their gradients, matmuls) divided by its time, against the machine's peak measured in the
same run: the best of a large float32 matmul and of the model's own dominant convolution shape. With ``--bf16`` our
step also runs with the networks in ``mixed_bfloat16`` (float32 master weights, float32 likelihood); that figure is
compared with the same float32 reference and, for utilisation, with the bfloat16 peak of that convolution shape
(oneDNN uses AMX where the CPU has it). TFP's PixelCNN has no mixed-precision switch of its own.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

from benchmarks import paired
from gd_bottleneck.precision import PRECISIONS

ARCHITECTURES = {
    # the paper's PixelCNN++ (Salimans et al. 2017; appendix B of Rey & Mnih) at 32x32
    "paper": {"image_size": 32, "filters": 160, "resnets": 5, "stages": 3, "components": 10, "dropout": 0.5,
              "batch_size": 4},
    # a small one for --quick
    "quick": {"image_size": 16, "filters": 32, "resnets": 1, "stages": 3, "components": 10, "dropout": 0.5,
              "batch_size": 16},
}


def _peak_rss_mib():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _time_steps(step, steps, repeats, warmup):
    """Median seconds of ``steps`` calls of ``step`` over ``repeats`` timings, after ``warmup`` calls."""
    for _ in range(warmup):
        step()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            loss = step()
        float(loss)  # wait for the last step
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def _block(step, steps):
    """One timed block: ``steps`` calls of ``step``, finished when it returns."""
    def run():
        for _ in range(steps):
            loss = step()
        float(loss)  # wait for the last step
    return run


def _images(arch, seed=0):
    size = arch["image_size"]
    return np.random.default_rng(seed).integers(0, 256, (arch["batch_size"], size, size, 3), dtype=np.uint8)


def ours_step(arch, jit_compile, precision="float32"):
    """Our PixelCNN + DiscretizedLogisticMixture: ``(train_step, loss_and_gradients, model)``."""
    import tensorflow as tf

    from gd_bottleneck.distributions import DiscretizedLogisticMixture
    from gd_bottleneck.pixelcnn import PixelCNN
    from gd_bottleneck.training.optimizer import FusedAdam

    network = PixelCNN(arch["filters"], arch["resnets"], arch["stages"], arch["dropout"],
                                  DiscretizedLogisticMixture.num_params(arch["components"], 3), seed=0,
                                  weight_norm=arch["weight_norm"], dtype=precision, conditional=False)
    images = tf.constant(_images(arch).astype(np.float32))
    network(tf.zeros(images.shape))
    optimizer = FusedAdam(1e-4)  # the trainer's Adam (TensorFlow's fused kernel, as tf_keras' Adam on TFP's side)
    optimizer.build(network.trainable_variables)

    def loss_and_gradients():
        with tf.GradientTape() as tape:
            params = network(images / 127.5 - 1.0, training=True)
            loss = -tf.reduce_mean(DiscretizedLogisticMixture.from_params(params).log_prob(images))
        return loss, tape.gradient(loss, network.trainable_variables)

    @tf.function(jit_compile=jit_compile)
    def train_step():
        loss, gradients = loss_and_gradients()
        optimizer.apply(gradients, network.trainable_variables)
        return loss

    return train_step, loss_and_gradients, network


def reference_step(arch):
    """TFP's PixelCNN (tf_keras) at the same architecture: ``train_step``."""
    import tensorflow as tf
    import tensorflow_probability as tfp
    import tf_keras

    size = arch["image_size"]
    distribution = tfp.distributions.PixelCNN(
        image_shape=(size, size, 3), num_resnet=arch["resnets"], num_hierarchies=arch["stages"],
        num_filters=arch["filters"], num_logistic_mix=arch["components"], receptive_field_dims=(3, 3),
        dropout_p=arch["dropout"], use_weight_norm=arch["weight_norm"], use_data_init=False)
    images = tf.constant(_images(arch).astype(np.float32))
    distribution.log_prob(images)  # builds the network
    variables = distribution.network.trainable_variables
    optimizer = tf_keras.optimizers.Adam(1e-4)

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(distribution.log_prob(images, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return train_step


def step_flops(loss_and_gradients):
    """Floating-point operations of one forward + backward pass, from TensorFlow's graph profiler."""
    import tensorflow as tf

    graph = tf.function(loss_and_gradients).get_concrete_function().graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops


def peak_gflops(arch, seconds=3.0):
    """The machine's peak here: a float32 2048^2 matmul, and the model's own 2x3 convolution 2F -> 2F (the gated
    resnets' output convolution, the largest) in float32 and in bfloat16."""
    import tensorflow as tf

    def rate(op, flops):
        op()
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            float(tf.reduce_sum(op()[:1]))
            count += 1
        return flops * count / (time.perf_counter() - start) / 1e9

    a = tf.random.normal([2048, 2048])
    matmul = tf.function(lambda: tf.matmul(a, a))
    f, size, batch = arch["filters"], arch["image_size"], arch["batch_size"]
    peaks = {"matmul_gflops": rate(matmul, 2 * 2048 ** 3)}
    for name, dtype in (("conv_gflops", tf.float32), ("conv_bf16_gflops", tf.bfloat16)):
        x = tf.cast(tf.random.normal([batch, size + 1, size + 2, 2 * f]), dtype)
        kernel = tf.cast(tf.random.normal([2, 3, 2 * f, 2 * f]), dtype)
        conv = tf.function(lambda: tf.nn.conv2d(x, kernel, 1, "VALID"))
        peaks[name] = rate(conv, 2 * batch * size * size * 6 * 2 * f * 2 * f)
    return peaks


def measure(kind, arch, steps, repeats, warmup):
    """One measurement in this process (see ``main`` for the kinds); returns a dict."""
    batch = arch["batch_size"]
    if kind == "peak":
        return peak_gflops(arch)
    if kind.startswith("pairs"):  # "pairs" or "pairs:<precision>" (our networks' precision; TFP's stays float32)
        ours, _, _ = ours_step(arch, jit_compile=False, precision=kind.partition(":")[2] or "float32")
        ours_seconds, reference_seconds = paired.interleaved_seconds(
            _block(ours, steps), _block(reference_step(arch), steps), pairs=repeats, warmup=warmup)
        summary = paired.ratio_summary(reference_seconds, ours_seconds)  # reference time over ours: the speed-up
        return {**{key: summary[key] for key in ("ratio", "ratio_low", "ratio_high", "ratio_coverage", "pairs")},
                "ours_images_per_s": batch * steps / summary["denominator_median_s"],
                "reference_images_per_s": batch * steps / summary["numerator_median_s"]}
    if kind in ("ours", "ours_xla", "ours_bf16"):
        precision = "mixed_bfloat16" if kind == "ours_bf16" else "float32"
        step, loss_and_gradients, network = ours_step(arch, jit_compile=kind == "ours_xla", precision=precision)
        seconds = _time_steps(step, steps, repeats, warmup)
        result = {"images_per_s": batch * steps / seconds, "parameters": int(network.count_params())}
        if kind == "ours":
            result["gflop_per_step"] = step_flops(loss_and_gradients) / 1e9
        return result
    if kind == "reference":
        seconds = _time_steps(reference_step(arch), steps, repeats, warmup)
        return {"images_per_s": batch * steps / seconds}
    if kind.startswith("hybrid_"):
        from benchmarks import hybrid_training

        preset, _, precision = kind[len("hybrid_"):].partition(":")
        return hybrid_training.measure(preset, 32, hybrid_training.DEFAULT_BATCH[preset], steps, warmup,
                                       precision or "float32")
    raise ValueError(f"unknown measurement {kind!r}")


def run_isolated(kind, arch_name, steps, repeats, warmup, weight_norm=False):
    """``measure`` in a fresh Python process (its own peak RSS, no shared TF state); returns its dict."""
    command = [sys.executable, "-m", "benchmarks.train_throughput", f"--_measure={kind}", f"--arch={arch_name}",
               f"--steps={steps}", f"--repeats={repeats}", f"--warmup={warmup}"] + (["--weight_norm"] * weight_norm)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(command, capture_output=True, text=True, env=env,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if done.returncode != 0:
        raise RuntimeError(f"measurement {kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small architecture, ours vs reference only, 1 line")
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default=None, help="default: paper (quick: quick)")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per block or repeat (default: paper 2, quick 10)")
    parser.add_argument("--pairs", type=int, default=9, help="interleaved ours/reference pairs for the ratio (>= 6)")
    parser.add_argument("--repeats", type=int, default=3, help="timings per single-side measurement (median kept)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps (tracing included)")
    parser.add_argument("--xla", action="store_true", help="also time our step compiled with XLA")
    parser.add_argument("--bf16", action="store_true", help="also time our step with mixed_bfloat16 networks")
    parser.add_argument("--hybrid", default="small,paper", help="hybrid presets to time ('' for none)")
    parser.add_argument("--weight_norm", action="store_true", help="weight-normalised layers on both sides")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="our networks' precision in the ratio's pairs (the reference stays float32)")
    parser.add_argument("--_measure", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    arch_name = args.arch or ("quick" if args.quick else "paper")
    arch = {**ARCHITECTURES[arch_name], "weight_norm": args.weight_norm}
    steps = args.steps or (10 if args.quick else 2)
    for name, value, least in (("steps", steps, 1), ("repeats", args.repeats, 1), ("pairs", args.pairs, 6)):
        if value < least:
            parser.error(f"--{name} must be >= {least} (received {value})")
    if args._measure:
        result = measure(args._measure, arch, steps, args.repeats, args.warmup)
        print(json.dumps({**result, "peak_rss_mib": _peak_rss_mib()}), flush=True)
        return

    pairs = run_isolated(f"pairs:{args.precision}", arch_name, steps, args.pairs, args.warmup, args.weight_norm)
    summary = {"arch": arch_name, **{k: v for k, v in arch.items()}, "steps": steps, "precision": args.precision,
               **{key: round(value, 3) for key, value in pairs.items()}}
    if args.quick:
        print(json.dumps(summary), flush=True)
        return
    ours = run_isolated("ours", arch_name, steps, args.repeats, args.warmup, args.weight_norm)
    reference = run_isolated("reference", arch_name, steps, args.repeats, args.warmup, args.weight_norm)
    peak = run_isolated("peak", arch_name, steps, args.repeats, args.warmup, args.weight_norm)
    achieved = ours["gflop_per_step"] * ours["images_per_s"] / arch["batch_size"]
    best_peak = max(peak["matmul_gflops"], peak["conv_gflops"])
    summary.update(ours_gflop_per_step=round(ours["gflop_per_step"], 2), ours_gflops=round(achieved, 2),
                   peak_matmul_gflops=round(peak["matmul_gflops"], 2), peak_conv_gflops=round(peak["conv_gflops"], 2),
                   flop_utilisation=round(achieved / best_peak, 3), ours_peak_rss_mib=ours["peak_rss_mib"],
                   reference_peak_rss_mib=reference["peak_rss_mib"], parameters=ours["parameters"])
    if args.xla:
        xla = run_isolated("ours_xla", arch_name, steps, args.repeats, args.warmup, args.weight_norm)
        summary["ours_xla_images_per_s"] = round(xla["images_per_s"], 3)
    if args.bf16:
        bf16 = run_isolated("ours_bf16", arch_name, steps, args.repeats, args.warmup, args.weight_norm)
        bf16_gflops = ours["gflop_per_step"] * bf16["images_per_s"] / arch["batch_size"]
        summary.update(ours_bf16_images_per_s=round(bf16["images_per_s"], 3),
                       ratio_bf16=round(bf16["images_per_s"] / reference["images_per_s"], 3),
                       peak_conv_bf16_gflops=round(peak["conv_bf16_gflops"], 2), ours_bf16_gflops=round(bf16_gflops, 2),
                       flop_utilisation_bf16=round(bf16_gflops / peak["conv_bf16_gflops"], 3),
                       ours_bf16_peak_rss_mib=bf16["peak_rss_mib"])
    print(json.dumps(summary), flush=True)
    for preset in [name for name in args.hybrid.split(",") if name]:
        for precision in ("float32", "mixed_bfloat16") if args.bf16 else ("float32",):
            result = run_isolated(f"hybrid_{preset}:{precision}", arch_name, steps, 1, 2)
            print(json.dumps({"hybrid": preset, **result}), flush=True)


if __name__ == "__main__":
    main()
