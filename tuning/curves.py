"""Learning curves of a sweep: held-out ELBO and VAE KL against the training step, for every run and setting.

    python -m tuning.curves studies/figure2_8x8/results/search studies/figure2_8x8/results/search_extension \
        --out studies/figure2_8x8/results/curves.png --floor studies/figure2_8x8/results/entropy_floor.json

This is the evidence behind the convergence criterion (``tuning.convergence``): each run's ``curve.jsonl`` (the
trainer's ``--curve_points`` evaluations in test mode on held-out training images) as a thin line, each setting's mean
over seeds as a thick line, and the last quarter of training, over which the criterion measures the improvement,
shaded. A plateau shows as a flat thick line inside the shaded band; a late rise in KL (latents taken into use late)
shows on the right panel.
"""

import os

import numpy as np
from absl import app, flags

from gd_bottleneck import cli
from gd_bottleneck.training import files
from gd_bottleneck.training.callbacks import read_curve
from tuning import families, figures, frontier

METRICS = (("elbo_bpd", "held-out negative ELBO (bits/dim)"), ("kl_bpd", "held-out VAE KL (bits/dim)"))


def load_curves(paths):
    """One record per run under ``paths`` (as :func:`tuning.frontier.load_runs` finds them) that has a learning
    curve: its kind, strength and seed, plus ``curve``, the list of ``{"step", "elbo_bpd", "kl_bpd", ...}`` points."""
    records = []
    for record in frontier.load_runs(paths):
        curve = read_curve(os.path.join(os.path.dirname(record["path"]), "curve.jsonl"))
        if curve:
            records.append({**record, "curve": curve})
    return records


def group_by_setting(records):
    """``{(kind, strength): [records sorted by seed]}`` in the tables' order (families, then strength)."""
    groups = {}
    for record in records:
        groups.setdefault((record["kind"], record["strength"]), []).append(record)
    order = list(families.names())
    return {key: sorted(groups[key], key=lambda record: record["seed"])
            for key in sorted(groups, key=lambda key: (order.index(key[0]), key[1] or 0.0))}


def mean_curve(records, metric):
    """``(steps, means)``: ``metric`` averaged over ``records`` at the steps *every* run has (the seeds of one setting
    share the protocol, so they share their evaluation steps; a run cut short limits the mean to its steps)."""
    by_run = [{point["step"]: point[metric] for point in record["curve"]} for record in records]
    steps = sorted(set.intersection(*(set(values) for values in by_run)))
    return steps, [float(np.mean([values[step] for values in by_run])) for step in steps]


def plot(records, out, floor=None):
    """Two panels (ELBO, KL) against the step; one colour per setting, a shade of its kind's colour by strength.
    ``floor`` (a dict from ``data.entropy_floor``) is quoted in the title rather than drawn: at 4.6 bits/dim it lies
    far below the plateaus, and a y-axis reaching down to it would flatten the differences the plot is about."""
    plt = figures.pyplot()
    groups = group_by_setting(records)
    figure, panels = plt.subplots(1, 2, figsize=(13, 6.2), dpi=120)
    last_step = max(point["step"] for record in records for point in record["curve"])
    kinds = list(dict.fromkeys(kind for kind, _ in groups))
    for (kind, strength), members in groups.items():
        settings_of_kind = [key for key in groups if key[0] == kind]
        shade = (settings_of_kind.index((kind, strength)) + 1) / (len(settings_of_kind) + 1)
        palette = ("Blues", "Oranges", "Greys", "Greens", "Purples")[kinds.index(kind) % 5]
        color = plt.get_cmap(palette)(0.35 + 0.6 * shade)
        label = families.get(kind).label + ("" if strength is None or families.get(kind).is_preset
                                            else f" {strength:g}")
        for panel, (metric, _) in zip(panels, METRICS):
            for member in members:
                panel.plot([p["step"] for p in member["curve"]], [p[metric] for p in member["curve"]], color=color,
                           linewidth=0.6, alpha=0.5)
            steps, means = mean_curve(members, metric)
            panel.plot(steps, means, color=color, linewidth=2.0, label=f"{label} ({len(members)} seeds)")
    for panel, (metric, title) in zip(panels, METRICS):
        panel.axvspan(0.75 * last_step, last_step, color="grey", alpha=0.12, linewidth=0)
        panel.set_xlabel("training step")
        panel.set_ylabel(title)
        panel.grid(alpha=0.3)
    elbo_ends = [point["elbo_bpd"] for record in records for point in record["curve"][1:]]
    panels[0].set_ylim(min(elbo_ends) - 0.05, max(elbo_ends) + 0.05)  # the first evaluation is far above the rest
    floor_note = f"; entropy floor {floor['floor_bpd']:.3f}, below" if floor is not None else ""
    panels[0].set_title(f"held-out ELBO (thin: seeds, thick: mean, shaded: last quarter{floor_note})", fontsize=10)
    panels[1].set_title("held-out VAE KL", fontsize=10)
    handles, labels = panels[0].get_legend_handles_labels()
    figure.legend(handles, labels, fontsize=7, loc="lower center", ncol=4, frameon=False)
    figure.tight_layout(rect=(0, 0.04 + 0.028 * ((len(labels) + 3) // 4), 1, 1))
    figures.save_figure(figure, out)


FLAGS = flags.FLAGS


def define_flags():
    """This command's flags, shared by name with ``tuning.frontier`` (see :func:`gd_bottleneck.cli.define_flag`)."""
    cli.define_flag(flags.DEFINE_string, "out", None, "Where to write the plot (.png).")
    cli.define_flag(flags.DEFINE_string, "floor", None,
                    "entropy_floor.json (python -m studies.figure2_8x8.entropy_floor) to draw on the plot.")


def main(argv):
    """``argv[1:]``: run folders or folders holding them (a search directory)."""
    if len(argv) < 2 or not FLAGS.out:
        raise app.UsageError("Give run folders (or folders holding them) and --out=<file.png>.")
    try:
        records = load_curves(argv[1:])
    except (FileNotFoundError, KeyError) as error:
        raise app.UsageError(error.args[0] if error.args else str(error))
    if not records:
        raise app.UsageError(f"No run with a curve.jsonl found under {argv[1:]}.")
    plot(records, FLAGS.out, files.read_json(FLAGS.floor) if FLAGS.floor else None)
    print(f"{len(records)} runs in {len(group_by_setting(records))} settings -> {FLAGS.out}")
    return 0


def run():
    """Console-script entry point (see setup.cfg)."""
    define_flags()
    cli.run(main, arguments=True)


if __name__ == "__main__":
    run()
