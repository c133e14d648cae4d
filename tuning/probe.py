"""Linear probes: how well a run's VAE latents predict the ``gd_shapes`` generative factors.

    python -m tuning.probe runs/figure2 --csv studies/figure2_8x8/results/probe.csv

Why: the VAE KL says *how much* the latents carry, not *what*. The embedded dataset records the factors each image
was rendered from, so we can ask whether a stronger bottleneck on the autoregressive path pushes the global
structure (background hue and stripes, the number, place and size of the objects) into the latents.

Protocol: one draw z ~ q(z|x) per test image (``--latents=sample``, the default: what the decoder receives), or the
posterior means E[z|x] (``--latents=mean``), ``latent_size**2 * latent_channels`` numbers each, standardised;
a ridge regression (closed form, ``ridge`` x identity on the standardised features) fitted on the first half of the
test split and scored by R^2 on the second half, per factor. Circular factors are probed through their cosine and
sine (hue period 1, stripe angle period pi) and scored by the mean R^2 of the two. R^2 <= 0 means no linear
information (held-out predictions are no better than the mean).
"""

import os

import numpy as np
from absl import app, flags

from gd_bottleneck import cli, data
from gd_bottleneck.training import checkpoints, files
from tuning import families, frontier
from tuning.kept_results import kept_result

RIDGE = 1.0
FACTORS = ("hue", "stripe_angle", "stripe_period", "num_objects", "largest_x", "largest_y", "largest_size")


def factor_targets(factors):
    """``{name: [N, k] float64}`` of the global factors (largest object = slot 0), in the order of ``FACTORS``."""
    background, objects = factors["background"], factors["objects"]
    hue = 2 * np.pi * background["hue"].astype(np.float64)
    angle = 2 * background["stripe_angle"].astype(np.float64)
    column = lambda values: np.asarray(values, np.float64)[:, None]  # noqa: E731
    return {"hue": np.stack([np.cos(hue), np.sin(hue)], 1),
            "stripe_angle": np.stack([np.cos(angle), np.sin(angle)], 1),
            "stripe_period": column(background["stripe_period"]),
            "num_objects": column(factors["num_objects"]),
            "largest_x": column(objects["x"][:, 0]), "largest_y": column(objects["y"][:, 0]),
            "largest_size": column(objects["size"][:, 0])}


def ridge_r2(features, targets, ridge=RIDGE):
    """Mean held-out R^2 over the columns of ``targets`` of a ridge fit on the first half, scored on the second."""
    half = len(features) // 2
    mean, scale = features[:half].mean(0), features[:half].std(0) + 1e-8
    x = (features - mean) / scale
    x = np.concatenate([x, np.ones((len(x), 1))], 1)
    fit_x, test_x, fit_y, test_y = x[:half], x[half:], targets[:half], targets[half:]
    penalty = ridge * np.eye(x.shape[1])
    penalty[-1, -1] = 0.0  # no penalty on the intercept
    weights = np.linalg.solve(fit_x.T @ fit_x + penalty, fit_x.T @ fit_y)
    residual = ((test_y - test_x @ weights) ** 2).sum(0)
    total = ((test_y - test_y.mean(0)) ** 2).sum(0)
    return float(np.mean(1.0 - residual / total))


LATENTS = ("sample", "mean")


def posterior(model, images, batch_size=250):
    """``(mean, stddev)`` of q(z|x), each flattened to ``[N, latent_size**2 * latent_channels]`` float64."""
    batches = [model.encode(images[start:start + batch_size]) for start in range(0, len(images), batch_size)]
    means, stddevs = zip(*batches)
    return tuple(np.concatenate(parts).astype(np.float64).reshape(len(images), -1) for parts in (means, stddevs))


def latent_features(mean, stddev, latents="sample", seed=0):
    """The probe's features ``[N, D]``: one draw ``z = mean + stddev * eps`` per image (``"sample"``: what the
    decoder receives, so unused latents, whose draws are noise, carry nothing), or the means (``"mean"``: what the
    encoder computes; standardised, even tiny means of unused latents can still order the images)."""
    if latents not in LATENTS:
        raise ValueError(f"`latents` must be one of {LATENTS}. Received: {latents!r}")
    if latents == "mean":
        return mean
    return mean + stddev * np.random.default_rng(seed).standard_normal(mean.shape)


def probe_run(model_dir, images, targets, latents="sample"):
    """``{factor: R^2}`` for the run in ``model_dir``."""
    model = checkpoints.load_trained_model(model_dir)[0]
    features = latent_features(*posterior(model, images), latents=latents)
    return {name: ridge_r2(features, values) for name, values in targets.items()}


def cached_probe(model_dir, latents, compute):
    """The run's ``{factor: R^2}``, kept in ``model_dir/probe_<latents>.json`` (:func:`kept_result`): a probe needs
    the run's checkpoint, which is not committed. ``compute()`` runs when there is no such result for the run's
    current step count and the run has a checkpoint; returns None when it has neither."""
    return kept_result(model_dir, f"probe_{latents}", compute, latents=latents, ridge=RIDGE)


def probe_folder(model_dir, latents="sample", inputs=None):
    """The ``{factor: R^2}`` of the run in ``model_dir``, kept or computed (:func:`cached_probe`); None when it has
    neither a kept result nor a checkpoint. ``inputs`` (a dict) caches each dataset's test split across calls.
    ``ValueError`` if the run's data is not the shapes dataset, whose scene factors the probe needs."""
    config = files.read_json(os.path.join(model_dir, "run_config.json"))
    if config["dataset"] not in ("shapes", "shapes_tiny"):
        raise ValueError(f"{model_dir}: probes need the shapes dataset's factors (dataset={config['dataset']}).")
    inputs = {} if inputs is None else inputs
    key = (config["dataset"], config["image_size"], config["data_dir"])  # the run's own test split

    def compute():
        if key not in inputs:
            dataset, size, data_dir = key
            inputs[key] = (data.load_images(dataset, "test", size, data_dir),
                           factor_targets(data.load_factors("test", size, data_dir, dataset)))
        return probe_run(model_dir, *inputs[key], latents=latents)

    return cached_probe(model_dir, latents, compute)


FLAGS = flags.FLAGS


def define_flags():
    """This command's flags, defined when it runs, like tuning.frontier's (whose --csv and --runs_csv mean the same
    and are reused when both commands' flags live in one process, as in the tests)."""
    cli.define_flag(flags.DEFINE_string, "csv", None, "Where to write the per-setting table (.csv).")
    cli.define_flag(flags.DEFINE_string, "runs_csv", None, "Where to write the per-run table (.csv).")
    cli.define_flag(flags.DEFINE_enum, "latents", "sample", LATENTS, "Probe one draw z ~ q(z|x) per image (what "
                    "the decoder receives) or the posterior means E[z|x].")


def main(argv):
    """``argv[1:]``: run folders, or folders holding them (found by their results.json)."""
    if len(argv) < 2:
        raise app.UsageError("Give run folders, or folders holding them.")
    return probe(argv[1:], FLAGS.csv, FLAGS.runs_csv, FLAGS.latents)


def probe(paths, csv_path=None, runs_csv=None, latents="sample"):
    """Probes every run under ``paths`` (from its kept ``probe_<latents>.json``, else its checkpoint; a run with
    neither is left out and named), prints the per-setting table and writes the CSV files given."""
    records = frontier.load_runs(paths)
    if not records:
        raise app.UsageError(f"No results.json found under {paths}.")
    inputs = {}
    probed = []
    for record in records:
        model_dir = os.path.dirname(record["path"])
        try:
            r2 = probe_folder(model_dir, latents, inputs)
        except ValueError as error:
            raise app.UsageError(str(error))
        if r2 is None:
            print(f"{model_dir}: no probe_{latents}.json of its final step and no checkpoint: left out", flush=True)
            continue
        record.update(sorted(r2.items(), key=lambda item: FACTORS.index(item[0]) if item[0] in FACTORS else
                             len(FACTORS)))  # the tables' column order (kept files store the factors sorted)
        record["mean_r2"] = float(np.mean(list(r2.values())))
        probed.append(record)
        print(f"{record['kind']} {record['strength']} seed {record['seed']}: KL {record['kl_bpd']:.4f}, "
              f"mean R^2 {record['mean_r2']:.3f}", flush=True)
    if not probed:
        raise app.UsageError(f"No run under {paths} has a probe result or a checkpoint to compute one.")
    records = probed
    names = [name for name in records[0] if name not in ("path", "steps", "elbo_bpd", "wall_time_s", "converged",
                                                         "improvement_last_quarter_bpd", "kl_change_last_quarter_bpd")]
    settings = {}
    for record in records:
        settings.setdefault((record["kind"], record["strength"]), []).append(record)
    rows = [{"kind": kind, "strength": strength, "n": len(members),
             **{name: float(np.mean([m[name] for m in members])) for name in names
                if name not in ("kind", "strength", "seed")}}
            for (kind, strength), members in settings.items()]
    order = list(families.names())
    rows.sort(key=lambda row: (order.index(row["kind"]), row["strength"] or 0.0))
    print(frontier.format_table(rows, list(rows[0])))
    if csv_path:
        frontier.write_csv(rows, csv_path)
    if runs_csv:
        frontier.write_csv([{k: v for k, v in r.items() if k != "path"} for r in records], runs_csv)
    return 0


def run():
    """Console-script entry point (see setup.cfg)."""
    define_flags()
    cli.run(main, arguments=True)


if __name__ == "__main__":
    run()
