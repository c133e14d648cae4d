"""Likelihood bounds of a trained run: the paper's ELBO, the IWAE bound, the noise-marginalised bound and the KL.

    python -m trainers.evaluate --model_dir=runs/demo                                  # K = 16, S = 16
    python -m trainers.evaluate --model_dir=runs/demo --z_samples=128 --noise_samples=16 --max_images=500

Loads the run's newest intact checkpoint and its test split (or ``--split=validation``), computes the bounds of
gd_bottleneck/evaluation.py per image, prints their means with 95% intervals, and keeps them in the run folder:

    model_dir/bounds.json                      one entry per evaluation setting: K, S, seed, split, batch size,
                                               images, the checkpoint step, the means and intervals, the wall time
    model_dir/bounds/<split>_K<K>_S<S>_seed<seed>_n<images>_b<batch>.csv
                                               the per-image values (image index in the split's stored order)

A setting already kept for the checkpoint being evaluated is printed again without computing (``--recompute``
forces it); once the run has trained further, it is computed anew.
"""

import os
import time

from absl import app, flags

from gd_bottleneck import cli, data, evaluation
from gd_bottleneck.errors import DamagedFile
from gd_bottleneck.training import checkpoints, files

FLAGS = flags.FLAGS


def define_flags():
    """The command's flags (defined when it runs, not on import: the study runners import its functions beside the
    trainer's flags of the same names)."""
    flags.DEFINE_string("model_dir", None, "A training run's folder (run_config.json + checkpoints/) (required).")
    flags.DEFINE_integer("z_samples", 16, "K: importance samples of q(z|x) per image, in [1, 65536].")
    flags.DEFINE_integer("noise_samples", 16, "S: bottleneck noise draws per z sample and pixel, >= 1.")
    flags.DEFINE_integer("seed", 0, "Evaluation seed (which z samples and noise draws), in [0, 2**31).")
    flags.DEFINE_enum("split", "test", ["test", "validation"], "Which held-out images (validation: the run's "
                      "--validation_examples).")
    flags.DEFINE_integer("max_images", 0, "Evaluate only the first this many images of the split (0: all).")
    flags.DEFINE_integer("batch_size", None, "Images per batch (default: the run's eval_batch_size or batch_size).")
    flags.DEFINE_bool("recompute", False, "Compute even if bounds.json holds this setting for this checkpoint.")


BOUNDS_FILE = "bounds.json"


def setting_key(split, z_samples, noise_samples, seed, images, batch_size):
    """What fixes the numbers besides the weights (the batch size keys the noise streams)."""
    return {"split": split, "z_samples": z_samples, "noise_samples": noise_samples, "seed": seed, "images": images,
            "batch_size": batch_size}


def per_image_csv_name(key):
    return (f"{key['split']}_K{key['z_samples']}_S{key['noise_samples']}_seed{key['seed']}_n{key['images']}"
            f"_b{key['batch_size']}.csv")


def kept_entries(model_dir):
    """The entries of ``model_dir/bounds.json`` (an empty list when there is none)."""
    path = os.path.join(model_dir, BOUNDS_FILE)
    if not os.path.exists(path):
        return []
    advice = "Move it away to compute the bounds again."
    entries = files.read_json(path, required=("entries",), advice=advice)["entries"]
    if not isinstance(entries, list):
        raise DamagedFile(f"{path}: its entries are not a list. {advice}")
    return entries


def kept_entry(model_dir, key, step):
    """The kept entry of setting ``key`` for checkpoint ``step``, else None."""
    for entry in kept_entries(model_dir):
        if entry.get("setting") == key and entry.get("step") == step:
            return entry
    return None


def keep(model_dir, key, entry, per_image):
    """Writes the per-image CSV and puts ``entry`` into bounds.json in place of any entry of the same setting."""
    folder = os.path.join(model_dir, "bounds")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, per_image_csv_name(key))
    names = list(evaluation.BOUND_NAMES)
    rows = [",".join(["image", *names])]
    rows += [",".join([str(index), *(repr(float(per_image[name][index])) for name in names)])
             for index in range(len(per_image[names[0]]))]
    files.write_text_atomically(path, "\n".join(rows) + "\n")
    entry["per_image_csv"] = os.path.relpath(path, model_dir)
    entries = [kept for kept in kept_entries(model_dir) if kept.get("setting") != key] + [entry]
    files.write_json_atomically(os.path.join(model_dir, BOUNDS_FILE), {"entries": entries})
    return entry


def held_out_images(config, split):
    """The split's images as the run evaluates them (validation: the last ``validation_examples`` of train)."""
    if split == "test":
        return data.load_images(config.dataset, "test", config.image_size, config.data_dir, config.manual_dir)
    if not config.validation_examples:
        raise app.UsageError("Flag --split=validation needs a run trained with --validation_examples > 0.")
    train = data.load_images(config.dataset, "train", config.image_size, config.data_dir, config.manual_dir)
    return train[-config.validation_examples:]


def format_summary(entry):
    means = entry["means"]
    lines = [f"{'bound':<20} {'bits/dim':>9} {'95% CI':>9}"]
    for name in evaluation.BOUND_NAMES:
        lines.append(f"{name:<20} {means[name]['mean']:9.4f} {means[name]['ci95']:9.4f}")
    return "\n".join(lines)


def evaluate_run(model_dir, z_samples, noise_samples, seed=0, split="test", max_images=0, batch_size=None,
                 recompute=False, write=print):
    """Computes (or reads back) the bounds of the run in ``model_dir``; returns its bounds.json entry."""
    z_samples, noise_samples = evaluation.check_samples(z_samples, noise_samples)
    config_path = os.path.join(model_dir, "run_config.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"`model_dir` {model_dir!r} has no run_config.json: it is not a training run's folder.")
    run_config = checkpoints.run_config_of(config_path)
    images = held_out_images(run_config, split)
    images = images[:max_images] if max_images else images
    batch_size = batch_size or run_config.eval_batch_size or run_config.batch_size
    key = setting_key(split, z_samples, noise_samples, seed, len(images), batch_size)
    found = checkpoints.candidates(os.path.join(model_dir, "checkpoints"))
    kept = kept_entry(model_dir, key, checkpoints.step_of(found[0])) if found else None
    if kept is not None and not recompute:
        write(f"Kept in {os.path.join(model_dir, BOUNDS_FILE)} for step {kept['step']} (--recompute computes it "
              "again):")
        write(format_summary(kept))
        return kept
    model, _, checkpoint = checkpoints.load_trained_model(model_dir, warn=write)
    evaluation.check_memory(model.config, batch_size, noise_samples)
    step = checkpoints.step_of(checkpoint)
    write(f"Evaluating {len(images)} {split} images of {model_dir} at step {step}: K={z_samples} z samples, "
          f"S={noise_samples} noise draws, seed {seed}, batches of {batch_size}")
    began, reported = time.time(), [0.0]

    def progress(done, total):
        elapsed = time.time() - began
        if done == total or elapsed - reported[0] >= 30.0:
            reported[0] = elapsed
            write(f"  {done}/{total} images, {elapsed:.0f} s, ETA {elapsed / done * (total - done):.0f} s")

    per_image = evaluation.evaluate_bounds(model, images, z_samples, noise_samples, batch_size, seed,
                                           progress=progress)
    seconds = time.time() - began
    entry = {"setting": key, "step": step, "checkpoint": os.path.basename(checkpoint), "run_seed": run_config.seed,
             "means": evaluation.summarize(per_image), "wall_time_s": round(seconds, 1),
             "images_per_s": round(len(images) / seconds, 3)}
    entry = keep(model_dir, key, entry, per_image)
    write(format_summary(entry))
    write(f"Kept in {os.path.join(model_dir, BOUNDS_FILE)} and {os.path.join(model_dir, entry['per_image_csv'])}")
    return entry


def main(argv):
    if not FLAGS.model_dir:
        raise app.UsageError("Flag --model_dir is required.")
    if FLAGS.max_images < 0:
        raise app.UsageError(f"Flag --max_images must be >= 0. Received: {FLAGS.max_images}")
    if FLAGS.batch_size is not None and FLAGS.batch_size < 1:
        raise app.UsageError(f"Flag --batch_size must be >= 1. Received: {FLAGS.batch_size}")
    try:
        evaluate_run(FLAGS.model_dir, FLAGS.z_samples, FLAGS.noise_samples, FLAGS.seed, FLAGS.split,
                     FLAGS.max_images, FLAGS.batch_size, FLAGS.recompute)
    except FileNotFoundError as error:
        raise app.UsageError(str(error).replace("`model_dir`", "--model_dir"))
    except ValueError as error:
        raise app.UsageError(str(error).replace("Argument `", "Flag `--"))


def run():
    """Console-script entry point (see setup.cfg)."""
    define_flags()
    cli.run(main)


if __name__ == "__main__":
    run()
