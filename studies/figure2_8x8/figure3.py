"""The paper's Figure 3 at CPU scale: sample grids of the Figure 2 sweep's models, and grids whose rows share z.

    python -m studies.figure2_8x8.figure3 --search=studies/figure2_8x8/results/search --out=studies/figure2_8x8/figure3

For each of the paper's Figure 3 settings (Gaussian dropout p = 0.015 and 0.15, variational beta = 0.02 and 0.08;
seed 0) whose run has finished and still has its checkpoints, writes ``<setting>_samples.png`` (64 samples, z ~
N(0, I)) and ``<setting>_rows_share_z.png`` (8 rows of 8: each row one z, the decoder's noise varying along it, so
what stays fixed along a row is what the latents hold), and ``figure3.json`` (each grid's run, test ELBO and KL).
Settings without a finished run are listed as missing.
"""

import os

import tensorflow as tf
from absl import flags

from gd_bottleneck import cli, sampling
from gd_bottleneck.image_grids import write_png_grid
from gd_bottleneck.training import files
from gd_bottleneck.training.checkpoints import load_trained_model
from tuning import frontier

FLAGS = flags.FLAGS
flags.DEFINE_string("search", "studies/figure2_8x8/results/search",
                    "The sweep's folder (searched for results.json files).")
flags.DEFINE_string("out", "studies/figure2_8x8/figure3", "Where the PNG grids and figure3.json go.")
flags.DEFINE_integer("seed", 0, "Which seed's runs to draw from (the sweep's seeds: 0, 1, 2).")
SETTINGS = [("gd", frontier.GD, 0.015), ("gd", frontier.GD, 0.15), ("vb", frontier.VB, 0.02), ("vb", frontier.VB, 0.08)]
SAMPLE_SEED = [3, 0]


def draw(model_dir, name, out):
    """Writes the two grids of one run; returns their file names."""
    model, _, _ = load_trained_model(model_dir, warn=lambda text: None)
    seed = tf.constant(SAMPLE_SEED, tf.int32)
    samples = sampling.cached_samples(model, sampling.prior_latents(model, seed, 64), seed).numpy()
    shared = sampling.cached_samples(model, sampling.row_shared_latents(model, seed, 64, 8), seed).numpy()
    paths = [f"{name}_samples.png", f"{name}_rows_share_z.png"]
    for images, path in zip((samples, shared), paths):
        write_png_grid(os.path.join(out, path), images, columns=8)
    return paths


def main(argv):
    records = frontier.load_runs([FLAGS.search])
    command = f"python -m studies.figure2_8x8.figure3 --search={FLAGS.search} --out={FLAGS.out} --seed={FLAGS.seed}"
    report = {"command": command,
              "sample_seed": SAMPLE_SEED, "grids": [], "missing": []}
    for short, kind, strength in SETTINGS:
        name = f"{short}_{strength:g}"
        run = next((r for r in records if (r["kind"], r["strength"], r["seed"]) == (kind, strength, FLAGS.seed)),
                   None)
        model_dir = os.path.dirname(run["path"]) if run else None
        if run is None or not os.path.isdir(os.path.join(model_dir, "checkpoints")):
            report["missing"].append(name)
            print(f"{name}: no finished run with checkpoints (seed {FLAGS.seed})")
            continue
        grids = draw(model_dir, name, FLAGS.out)
        report["grids"].append({"setting": name, "run": model_dir, "test_elbo_bpd": run["elbo_bpd"],
                                "test_kl_bpd": run["kl_bpd"], "files": grids})
        print(f"{name}: KL {run['kl_bpd']:.4f} bits/dim, ELBO {run['elbo_bpd']:.4f} -> {', '.join(grids)}")
    files.write_json_atomically(os.path.join(FLAGS.out, "figure3.json"), report)


def run():
    """Console-script entry point."""
    cli.run(main)


if __name__ == "__main__":
    run()
