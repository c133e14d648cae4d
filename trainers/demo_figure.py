"""One labelled picture of what a run has learned: test images, their reconstructions, and samples from the prior.

    python -m trainers.demo_figure --model_dir=runs/demo --out=runs/demo/demo.png      # what `make demo` draws

Three rows of ``--num`` images each, upscaled without smoothing so that each image is at least 64 pixels wide: the
first test images, their reconstructions (z ~ q(z|x), then the decoder's own draws), and samples (z ~ N(0, I)),
under a caption with the run's setting (bottleneck and strength, image size, model preset), its training steps and
its test ELBO and KL in bits/dim (``results.json``). The newest checkpoint and the cached sampler draw them; the same
``--seed`` gives the same picture.
"""

import os

import numpy as np
import tensorflow as tf
from absl import flags

from gd_bottleneck import cli, data, sampling
from gd_bottleneck.training import files
from tuning.figures import pyplot, save_figure

FLAGS = flags.FLAGS


def define_flags():
    """The command's flags (defined when it runs, not on import: the study's figures import :func:`draw` beside
    other commands' flags of the same names)."""
    flags.DEFINE_string("model_dir", None, "A training run's folder (run_config.json + checkpoints/) (required).")
    flags.DEFINE_string("out", None, "Output PNG (default: <model_dir>/demo.png).")
    flags.DEFINE_integer("num", 8, "Images per row, in [1, 16].", lower_bound=1, upper_bound=16)
    flags.DEFINE_integer("seed", 0, "Sampling seed, in [0, 2**31).", lower_bound=0, upper_bound=2**31 - 1)


MIN_WIDTH = 64  # pixels per image in the figure


def setting(config):
    """The run's setting in words, e.g. ``Gaussian dropout p = 0.15``."""
    if config.bottleneck == "gaussian_dropout":
        return f"Gaussian dropout p = {config.dropout_rate:g}"
    if config.bottleneck == "variational":
        return f"variational bottleneck beta = {config.beta:g}"
    return "no bottleneck" + (f", auxiliary decoder weight {config.aux_weight:g}" if config.aux_weight else "")


def caption(config, results):
    """Two lines: the setting and data, then steps and the test ELBO/KL (or that the run has no results yet)."""
    first = (f"{setting(config)}, {config.model_preset}() on {config.dataset} {config.image_size}x{config.image_size}, "
             f"batch {config.batch_size}")
    if results is None:
        return first + "\nno results.json yet (training has not finished)"
    return (first + f"\nafter {results['steps']:,} steps: test ELBO {results['test_elbo_bpd']:.3f} bits/dim, "
            f"KL {results['test_kl_bpd']:.3f} bits/dim")


def upscaled(images, factor):
    """uint8 ``[N, H, W, 3]`` -> one row ``[H * factor, N * (W * factor + gap), 3]`` (nearest neighbour)."""
    big = np.repeat(np.repeat(images, factor, axis=1), factor, axis=2)
    gap = np.full((big.shape[1], max(2, factor // 4), 3), 255, np.uint8)
    return np.concatenate([part for image in big for part in (image, gap)][:-1], axis=1)


GAP, LINE, FONT = 10, 14, 9  # pixels between rows and around the text, pixels per title line; font size (points)


def text_width(plt, *texts):
    """The width in pixels (at 100 dpi) of the widest line of ``texts`` in the figures' font (one scratch figure)."""
    figure = plt.figure(dpi=100)
    renderer = figure.canvas.get_renderer()
    width = max(figure.text(0, 0, line, fontsize=FONT).get_window_extent(renderer=renderer).width
                for text in texts for line in text.split("\n"))
    plt.close(figure)
    return width


def layout(rows, labels, title):
    """The figure of :func:`draw`, laid out in pixels (100 dpi): each row's strip is drawn at its own size, one
    figure pixel per strip pixel, so that an image upscaled to 64 pixels stays 64 pixels wide in the PNG
    (``tight_layout`` would shrink the strips to make room for the labels). Returns ``(figure, axes, strips)``."""
    plt = pyplot()
    height, width = rows[0].shape[1:3]
    factor = max(1, -(-MIN_WIDTH // width))
    strips = [upscaled(row, factor) for row in rows]
    title_height = LINE * (title.count("\n") + 1) + 2 * GAP
    label_width = text_width(plt, *labels) + 2 * GAP
    strips_width = max(strip.shape[1] for strip in strips)
    total_width = max(label_width + strips_width + GAP, text_width(plt, title) + 2 * GAP)
    total_height = title_height + sum(strip.shape[0] + GAP for strip in strips)
    figure = plt.figure(figsize=(total_width / 100, total_height / 100), dpi=100)
    axes, top = [], total_height - title_height
    for strip, label in zip(strips, labels):
        strip_height, strip_width = strip.shape[:2]
        top -= strip_height
        axis = figure.add_axes((label_width / total_width, top / total_height, strip_width / total_width,
                                strip_height / total_height))
        top -= GAP
        axis.imshow(strip, interpolation="nearest", aspect="auto")
        axis.set_xticks([]), axis.set_yticks([])
        axis.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=FONT)
        axes.append(axis)
    figure.suptitle(title, fontsize=FONT, y=1 - GAP / total_height, va="top")
    return figure, axes, strips


def draw(rows, labels, title, out):
    """Writes the figure: one labelled image row per entry of ``rows`` (uint8 ``[N, H, W, 3]`` each), each image
    at least :data:`MIN_WIDTH` pixels wide."""
    figure, _, _ = layout(rows, labels, title)
    save_figure(figure, out)


def main(argv):
    out = FLAGS.out or os.path.join(FLAGS.model_dir or "", "demo.png")
    model, config, checkpoint = cli.trained_model_for_png(FLAGS.model_dir, out)
    seed = tf.constant([FLAGS.seed, 0], tf.int32)
    originals = data.load_images(config.dataset, "test", config.image_size, config.data_dir,
                                 config.manual_dir)[:FLAGS.num]
    reconstructions = sampling.reconstructions(model, originals, seed).numpy()
    samples = sampling.cached_samples(model, sampling.prior_latents(model, seed, FLAGS.num), seed).numpy()
    results_path = os.path.join(FLAGS.model_dir, "results.json")
    results = files.read_json(results_path) if os.path.exists(results_path) else None
    draw([originals, reconstructions, samples], ["test images", "reconstructions", "samples"],
         caption(config, results), out)
    print(f"Wrote {out}: {FLAGS.num} test images, their reconstructions and {FLAGS.num} samples from {checkpoint}")


def run():
    """Console-script entry point (see setup.cfg)."""
    define_flags()
    cli.run(main)


if __name__ == "__main__":
    run()
