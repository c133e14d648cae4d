"""The study's figures (PLAN.md section 10), per bed, into ``results/<phase>/figures/``.

    python -m studies.gd_vs_vb_16x16.figures main       # frontier, learning curves, Figure 3 per bed and target
    python -m studies.gd_vs_vb_16x16.figures pilot      # frontier and learning curves of the pilots

- ``<bed>_frontier.png``: VAE KL (x) against each of the three evaluations (a panel each: the paper's noise-off
  ELBO, the noise-off IWAE bound, the noise-marginal bound, all bits/dim on the first 2,000 test images); seeds as
  small points, setting means with 95% t-intervals on both axes, each family's lower envelope (:func:`pareto_envelope`)
  as its line, and in the main phase each matched pair joined by a dotted line labelled with its target. Drawn from
  the phase's ``runs.csv`` alone (``report.py`` writes it).
- ``<bed>_curves.png``: held-out ELBO and KL against the step (``tuning.curves``), seeds thin, means thick.
- ``<bed>_<target>_figure3.png`` (main phase, from the kept model-only checkpoints of seed 0): test images, then
  for each arm its reconstructions and two rows of samples where each row shares one z ~ N(0, I) (what stays fixed
  along a row is what the latents hold), labelled with the setting, KL and bounds.
"""

import csv
import math
import os

import tensorflow as tf
from absl import app

from gd_bottleneck import cli, data, sampling
from gd_bottleneck.training import checkpoints
from studies.gd_vs_vb_16x16 import main_analysis, report
from trainers import demo_figure
from tuning import curves, families, figures, frontier

EVALUATIONS = (("elbo_bpd", "paper's ELBO, noise off"), ("iwae_bpd", "IWAE bound, noise off"),
               ("noise_marginal_bpd", "noise-marginal bound (primary)"))
SAMPLE_SEED = (3, 0)
FIGURE3_IMAGES = 8


def read_runs_csv(path):
    """``report.py``'s runs.csv as rows of numbers (empty cells left out; missing file: no rows)."""
    if not os.path.exists(path):
        return []
    text = {"id", "bed", "kind", "status", "cpu"}
    with open(path) as stream:
        return [{name: value if name in text else (int(value) if name in ("seed", "steps", "epochs") else float(value))
                 for name, value in row.items() if value != ""} for row in csv.DictReader(stream)]


def setting_of(row):
    """A study row's kind, strength and seed as ``tuning`` records name them (the no-bottleneck baseline has no
    strength)."""
    return {"kind": row["kind"], "strength": None if row["kind"] == "none" else row["strength"], "seed": row["seed"]}


def as_records(rows, evaluation):
    """Study rows as ``tuning.frontier`` records with ``elbo_bpd`` := ``evaluation``."""
    return [{**setting_of(row), "kl_bpd": row["kl_bpd"], "elbo_bpd": row[evaluation]}
            for row in rows if evaluation in row]


def pareto_envelope(settings):
    """The settings on a family's lower envelope, in order of KL: those that no other setting of the family beats
    on both axes (at least its KL and at most its bound, one strictly). More KL is not a cost here: the envelope is
    the best bound the family reaches at each KL, as in Figure 2, whatever strength got there."""
    def beaten(row):
        return any(other["kl_bpd_mean"] >= row["kl_bpd_mean"] and other["elbo_bpd_mean"] <= row["elbo_bpd_mean"]
                   and (other["kl_bpd_mean"], other["elbo_bpd_mean"]) != (row["kl_bpd_mean"], row["elbo_bpd_mean"])
                   for other in settings)

    return sorted((row for row in settings if not beaten(row)), key=lambda row: row["kl_bpd_mean"])


def _draw_family(panel, kind, settings, records, style):
    """One family: its seeds (small), its setting means with 95% t-intervals on both axes (one seed: none), labelled
    with their strength, and its lower envelope as a line."""
    color, marker = style
    family = families.get(kind)
    panel.scatter([r["kl_bpd"] for r in records], [r["elbo_bpd"] for r in records], color=color, marker=marker, s=12,
                  alpha=0.35, linewidths=0)
    half = [[0.0 if math.isnan(row[f"{key}_ci95"]) else row[f"{key}_ci95"] for row in settings]
            for key in ("kl_bpd", "elbo_bpd")]
    panel.errorbar([row["kl_bpd_mean"] for row in settings], [row["elbo_bpd_mean"] for row in settings],
                   xerr=half[0], yerr=half[1], color=color, marker=marker, linestyle="none", capsize=2,
                   markersize=10 if marker in "*D" else 6)
    envelope = pareto_envelope(settings)
    panel.plot([row["kl_bpd_mean"] for row in envelope], [row["elbo_bpd_mean"] for row in envelope], color=color,
               linewidth=1.5, label=f"{family.label}: lower envelope")
    for row in settings:
        if row["strength"] is not None and not family.is_preset:
            panel.annotate(f"{row['strength']:g}", (row["kl_bpd_mean"], row["elbo_bpd_mean"]), fontsize=7,
                           color=color, xytext=(5, -10), textcoords="offset points")


def _frame_on_points(panel, records, settings, margin=0.08):
    """Frames ``panel`` on the seeds and the setting means, so that a few-seed interval (t(0.975, 1) = 12.7 with
    two seeds) cannot shrink the points to a corner; returns whether any interval runs off the frame."""
    if not records:
        return False
    clipped = False
    for key, axis in (("kl_bpd", "x"), ("elbo_bpd", "y")):
        values = [r[key] for r in records] + [row[f"{key}_mean"] for row in settings]
        low, high = min(values), max(values)
        pad = margin * (high - low) or 0.01
        low, high = low - pad, high + pad
        getattr(panel, f"set_{axis}lim")(low, high)
        clipped = clipped or any(row[f"{key}_mean"] - row[f"{key}_ci95"] < low
                                 or row[f"{key}_mean"] + row[f"{key}_ci95"] > high
                                 for row in settings if not math.isnan(row[f"{key}_ci95"]))
    return clipped


def frontier_figure(rows, bed, out):
    """Writes ``bed``'s frontier (module docstring); returns ``out``."""
    plt = figures.pyplot()
    figure, panels = plt.subplots(1, len(EVALUATIONS), figsize=(16.5, 5.4), dpi=110)
    mine, clipped = [row for row in rows if row["bed"] == bed], False
    for panel, (evaluation, title) in zip(panels, EVALUATIONS):
        records = as_records(mine, evaluation)
        settings = frontier.aggregate(records)
        for index, kind in enumerate(families.names()):
            if any(row["kind"] == kind for row in settings):
                _draw_family(panel, kind, [row for row in settings if row["kind"] == kind],
                             [r for r in records if r["kind"] == kind], frontier.STYLES[index % len(frontier.STYLES)])
        for target in main_analysis.TARGETS:
            _, gd_rows, vb_rows = main_analysis.pairs(mine, bed, target)
            if gd_rows:
                means = [[sum(r[key] for r in arm) / len(arm) for arm in (gd_rows, vb_rows)]
                         for key in ("kl_bpd", evaluation)]
                panel.plot(*means, color="grey", linestyle=":", linewidth=1.2)
                panel.annotate(f"matched pair, target {target}", (sum(means[0]) / 2, sum(means[1]) / 2), fontsize=7,
                               color="grey", xytext=(4, 4), textcoords="offset points")
        clipped = _frame_on_points(panel, records, settings) or clipped
        panel.set_xlabel("VAE KL (bits/dim)")
        panel.set_ylabel(f"{evaluation} (bits/dim)")
        panel.set_title(title, fontsize=10)
        panel.grid(alpha=0.3)
    panels[0].legend(fontsize=7)
    figure.suptitle(f"{bed}: bound against VAE KL, first 2,000 test images (lower right is better; bars: 95% "
                    "t-intervals over seeds" + ("; a bar running off the frame is wider than it" if clipped else "")
                    + "; labels: p or beta)", fontsize=10)
    figure.tight_layout()
    figures.save_figure(figure, out)
    return out


def curves_figure(rows, kept_curves, bed, out):
    """Writes ``bed``'s learning curves; returns ``out``, or None when no run of the bed has a curve."""
    records = [{**setting_of(row), "curve": kept_curves[row["id"]]}
               for row in rows if row["bed"] == bed and row["id"] in kept_curves]
    if not records:
        return None
    curves.plot(records, out)
    return out


def arm_rows(model_dir, originals, seed):
    """One arm's three rows: reconstructions of ``originals`` and two rows of samples, each row sharing a z."""
    model, _, _ = checkpoints.load_trained_model(model_dir, warn=lambda text: None)
    count = len(originals)
    shared = sampling.row_shared_latents(model, seed, 2 * count, count)
    samples = sampling.cached_samples(model, shared, seed).numpy()
    return [sampling.reconstructions(model, originals, seed).numpy(), samples[:count], samples[count:]]


def figure3(gd_row, vb_row, phase_folder, out):
    """Writes the Figure 3 of one matched pair (seed 0 of each arm); returns ``out``."""
    config = checkpoints.run_config_of(os.path.join(phase_folder, gd_row["id"], "run_config.json"))
    originals = data.load_images(config.dataset, "test", config.image_size, config.data_dir,
                                 config.manual_dir)[:FIGURE3_IMAGES]
    seed = tf.constant(SAMPLE_SEED, tf.int32)
    rows, labels = [originals], ["test images"]
    for name, row in (("GD", gd_row), ("VB", vb_row)):
        rows += arm_rows(os.path.join(phase_folder, row["id"]), originals, seed)
        labels += [f"{name} reconstructions", f"{name} samples, one z", f"{name} samples, another z"]
    title = "\n".join(
        f"{name} {'p' if name == 'GD' else 'beta'} = {row['strength']:g} (seed {row['seed']}): KL {row['kl_bpd']:.4f}, "
        f"ELBO {row['elbo_bpd']:.4f}, IWAE {row['iwae_bpd']:.4f}, noise-marginal {row['noise_marginal_bpd']:.4f} "
        "bits/dim" for name, row in (("GD", gd_row), ("VB", vb_row)))
    demo_figure.draw(rows, labels, title, out)
    return out


def main(argv):
    if len(argv) != 2 or argv[1] not in ("pilot", "main"):
        raise app.UsageError("Give one phase: pilot or main.")
    phase = argv[1]
    phase_folder = os.path.join(report.STUDY, "results", phase)
    rows = [row for row in read_runs_csv(os.path.join(phase_folder, "runs.csv")) if "kl_bpd" in row]
    if not rows:
        raise app.UsageError(f"No run of phase {phase!r} with bounds in results/{phase}/runs.csv: run "
                             f"`python -m studies.gd_vs_vb_16x16.report {phase}` first.")
    out = os.path.join(phase_folder, "figures")
    kept_curves = report.kept_curves(rows, phase_folder)
    written = []
    for bed in sorted({row["bed"] for row in rows}):
        written.append(frontier_figure(rows, bed, os.path.join(out, f"{bed}_frontier.png")))
        written.append(curves_figure(rows, kept_curves, bed, os.path.join(out, f"{bed}_curves.png")))
        for target in main_analysis.TARGETS if phase == "main" else ():
            seeds, gd_rows, vb_rows = main_analysis.pairs(rows, bed, target)
            if 0 in seeds:
                pair = (gd_rows[seeds.index(0)], vb_rows[seeds.index(0)])
                written.append(figure3(*pair, phase_folder, os.path.join(out, f"{bed}_{target}_figure3.png")))
    for path in filter(None, written):
        print(f"Wrote {os.path.relpath(path, report.STUDY)}")


if __name__ == "__main__":
    cli.run(main, arguments=True)
