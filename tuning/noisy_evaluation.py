"""The test ELBO of trained runs with the bottleneck's training noise kept at test time, beside the paper's evaluation.

    python -m tuning.noisy_evaluation studies/figure2_8x8/results/search studies/figure2_8x8/results/search_extension \
        --csv studies/figure2_8x8/results/noisy_evaluation.csv

Why: the paper evaluates (and ``results.json`` reports) every model with the bottleneck switched off at test time:
Gaussian dropout as the identity, the variational bottleneck as its mean. The mixer was trained on the noisy v,
though; with a strong bottleneck (Gaussian dropout p = 0.99 multiplies v by noise of standard deviation 9.9) the
noise-free v may lie where training never put it, and the test ELBO then measures that mismatch as much as the
trade-off. This command measures the gap: per run, the test ELBO with the bottleneck's noise (one draw per image
and ``--draws`` draws; everything else exactly as the evaluation: PixelCNN++ dropout off, the evaluation's z draw),
and the noise-free ELBO recomputed from the same checkpoint (equal to ``results.json``'s, a check). A noisy ELBO is
the average over noise draws of the bound the model was trained on, so it describes the stochastic decoder that
was trained; the noise-free one describes the deterministic decoder the paper evaluates. Neither is wrong; they
differ most where the noise is strongest.

Each run's result is kept as ``noisy_evaluation.json`` beside its ``results.json`` (tuning/kept_results.py), so the
table can be redrawn without checkpoints.
"""

import contextlib
import os

import numpy as np
import tensorflow as tf
from absl import app, flags

from gd_bottleneck import cli, data
from gd_bottleneck.training import checkpoints, files
from tuning import families, frontier
from tuning.kept_results import kept_result
from tuning.statistics import GD, VB, mean_ci

FLAGS = flags.FLAGS


def define_flags():
    cli.define_flag(flags.DEFINE_string, "csv", None, "Where to write the per-run table (.csv).")
    flags.DEFINE_integer("draws", 2, "Noise draws per test image (>= 1).", lower_bound=1)


@contextlib.contextmanager
def bottleneck_noise_at_test(model):
    """Inside, ``model``'s bottleneck applies its training-time noise in every call, test mode included (nothing
    else changes mode). Each call draws new noise (the layer's noise counter advances)."""
    layer = model.bottleneck_layer
    transform = layer.transform
    layer.transform = lambda x, training=None: transform(x, training=True)
    try:
        yield
    finally:
        del layer.transform  # the class's method again


def test_elbos(model, images, batch_size, draws):
    """``(noise_free, noisy)`` mean test ELBO in bits/dim over ``images``, in the evaluation's batches (its z draw
    is keyed by the batch size); ``noisy`` averages ``draws`` passes with the bottleneck's noise."""
    def mean_elbo(elbo):
        values = [elbo(tf.constant(images[start:start + batch_size])).numpy()
                  for start in range(0, len(images), batch_size)]
        return float(np.mean(np.concatenate(values)))

    noise_free = mean_elbo(tf.function(lambda batch: model.elbo(batch)["elbo_bpd"]))
    with bottleneck_noise_at_test(model):
        noisy_elbo = tf.function(lambda batch: model.elbo(batch)["elbo_bpd"])  # traced inside: with the noise
        noisy = float(np.mean([mean_elbo(noisy_elbo) for _ in range(draws)]))
    return noise_free, noisy


def evaluate_folder(model_dir, draws, inputs=None):
    """``{"noise_free_elbo_bpd", "noisy_elbo_bpd", "draws"}`` of the run in ``model_dir``, kept or computed; None
    when it has neither. ``inputs`` (a dict) caches each dataset's test split across calls."""
    config = files.read_json(os.path.join(model_dir, "run_config.json"))
    inputs = {} if inputs is None else inputs
    key = (config["dataset"], config["image_size"], config["data_dir"])

    def compute():
        if key not in inputs:
            inputs[key] = data.load_images(key[0], "test", key[1], key[2])
        model = checkpoints.load_trained_model(model_dir, warn=lambda text: print(text, flush=True))[0]
        noise_free, noisy = test_elbos(model, inputs[key], config["eval_batch_size"] or config["batch_size"], draws)
        return {"noise_free_elbo_bpd": noise_free, "noisy_elbo_bpd": noisy, "draws": draws}

    return kept_result(model_dir, "noisy_evaluation", compute)


def setting_means(rows):
    """Per setting: the number of runs, and mean and 95% t-interval half-width of KL and of both ELBOs."""
    settings = {}
    for row in rows:
        settings.setdefault((row["kind"], row["strength"]), []).append(row)
    table = []
    for (kind, strength), members in settings.items():
        entry = {"kind": kind, "strength": strength, "n": len(members)}
        for name in ("kl_bpd", "noise_free_elbo_bpd", "noisy_elbo_bpd"):
            entry[f"{name}_mean"], entry[f"{name}_ci95"] = mean_ci([member[name] for member in members])
        table.append(entry)
    return table


def noisy_gd_against_vb(rows, min_seeds=2):
    """Each GD setting evaluated with its noise against each VB setting evaluated as the paper does (its mean), seed
    by seed over the seeds both have (at least ``min_seeds``): mean and 95% t-interval half-width of the
    differences GD - VB of ELBO (< 0: GD better) and of KL (> 0: GD carries more). Each side is scored by the valid
    bound that is better for it: a noisy decoder is a proper model (its per-pixel distribution averages over the
    noise), and one noise draw per pixel bounds its likelihood from below."""
    by_setting = {}
    for row in rows:
        by_setting.setdefault((row["kind"], row["strength"]), {})[row["seed"]] = row
    pairs = []
    for (kind, rate), gd in sorted(by_setting.items()):
        if kind != GD:
            continue
        for (other, beta), vb in sorted(by_setting.items()):
            seeds = sorted(set(gd) & set(vb))
            if other != VB or len(seeds) < min_seeds:
                continue
            elbo = mean_ci([gd[seed]["noisy_elbo_bpd"] - vb[seed]["noise_free_elbo_bpd"] for seed in seeds])
            kl = mean_ci([gd[seed]["kl_bpd"] - vb[seed]["kl_bpd"] for seed in seeds])
            pairs.append({"gd_rate": rate, "vb_beta": beta, "seeds": len(seeds), "elbo_bpd_diff_mean": elbo[0],
                          "elbo_bpd_diff_ci95": elbo[1], "kl_bpd_diff_mean": kl[0], "kl_bpd_diff_ci95": kl[1]})
    return pairs


def evaluate(paths, draws=2, csv_path=None):
    """Evaluates every run under ``paths`` that has a bottleneck (kept result or checkpoint); prints per-run and
    per-setting tables and writes the per-run CSV. Returns the per-run rows."""
    records = frontier.load_runs(paths)
    inputs, rows = {}, []
    for record in records:
        if record["kind"] not in ("gaussian_dropout", "variational"):
            continue
        model_dir = os.path.dirname(record["path"])
        result = evaluate_folder(model_dir, draws, inputs)
        if result is None:
            print(f"{model_dir}: no noisy_evaluation.json of its final step and no checkpoint: left out", flush=True)
            continue
        rows.append({"kind": record["kind"], "strength": record["strength"], "seed": record["seed"],
                     "elbo_bpd": record["elbo_bpd"], "noise_free_elbo_bpd": result["noise_free_elbo_bpd"],
                     "noisy_elbo_bpd": result["noisy_elbo_bpd"],
                     "noisy_minus_noise_free_bpd": result["noisy_elbo_bpd"] - result["noise_free_elbo_bpd"],
                     "kl_bpd": record["kl_bpd"], "run": model_dir})
    if not rows:
        raise app.UsageError(f"No run with a bottleneck under {paths} has a kept result or a checkpoint.")
    order = list(families.names())
    rows.sort(key=lambda row: (order.index(row["kind"]), row["strength"], row["seed"]))
    print("Test ELBO (bits/dim) without the bottleneck's noise (the paper's evaluation; elbo_bpd: results.json) "
          "and with it (noisy: the decoder as trained)")
    print(frontier.format_table(rows, list(rows[0])))
    means = setting_means(rows)
    print("\nPer setting (mean and 95% t-interval half-width over the seeds evaluated)")
    print(frontier.format_table(means, list(means[0])))
    pairs = noisy_gd_against_vb(rows)
    if pairs:
        print("\nGD with its noise against VB at its mean, seed by seed (GD - VB; ELBO < 0: GD better; KL > 0: GD "
              "carries more)")
        print(frontier.format_table(pairs, list(pairs[0])))
    if csv_path:
        frontier.write_csv(rows, csv_path)
    return rows


def main(argv):
    """``argv[1:]``: run folders, or folders holding them (found by their results.json)."""
    if len(argv) < 2:
        raise app.UsageError("Give run folders, or folders holding them.")
    try:
        evaluate(argv[1:], FLAGS.draws, FLAGS.csv)
    except FileNotFoundError as error:
        raise app.UsageError(str(error))
    return 0


def run():
    """Console-script entry point (see setup.cfg)."""
    define_flags()
    cli.run(main, arguments=True)


if __name__ == "__main__":
    run()
