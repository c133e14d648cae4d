"""The ELBO-vs-KL trade-off of a set of runs (the paper's Figure 2): table, plot, and GD-vs-VB comparison.

    python -m tuning.frontier runs/search --out frontier.png --csv figure2.csv
    python -m tuning.frontier --from_runs_csv studies/figure2_8x8/results/runs.csv --out frontier.png

Arguments are results.json files or folders searched for them (a search directory, a trainer model_dir). Runs are
grouped by kind (gaussian_dropout, variational, none, auxiliary_decoder) and strength (dropout rate, beta); seeds of
a setting are averaged and their spread (sample standard deviation) reported. Axes as in Figure 2: VAE KL (x) and
the negative ELBO (y), both bits/dim on the chosen split; lower-right is better (the latents used at a small cost).

The comparison: for every variational setting, the Gaussian dropout trade-off curve's ELBO at the same KL (linear
interpolation between the GD settings' means, ordered by KL; only inside the KL range GD covers). A positive gap
means Gaussian dropout reaches that KL with a better ELBO.
"""

import csv
import math
import os

import numpy as np
from absl import app, flags

from gd_bottleneck import cli
from gd_bottleneck.errors import DamagedFile
from gd_bottleneck.training import files
from tuning import convergence, families, figures
from tuning.statistics import GD, VB, bootstrap_gaps, curve_at, mean_ci, nearest_pairs

# Plot styles (colour, marker) in family order; families beyond the list reuse it.
STYLES = [("tab:blue", "o"), ("tab:orange", "s"), ("black", "*"), ("tab:green", "D"), ("tab:purple", "^")]


ADVICE = "Give run or search folders (their results.json files), or a runs.csv with --from_runs_csv."
RUNS_CSV_COLUMNS = ("strength", "seed", "steps", "elbo_bpd", "kl_bpd")


def find_results(paths):
    """Every results.json under ``paths`` (files or folders), sorted; ``FileNotFoundError`` if a path is missing."""
    found = []
    for path in paths:
        if os.path.isfile(path):
            found.append(path)
        elif os.path.isdir(path):
            for folder, subfolders, names in os.walk(path):
                subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
                found.extend(os.path.join(folder, name) for name in names if name == "results.json")
        else:
            raise FileNotFoundError(f"No such file or folder: {path!r}")
    return sorted(found)


def load_runs(paths, split="test"):
    """One record per run: path, kind, strength, seed, steps, elbo_bpd and kl_bpd on ``split``."""
    records = []
    for path in find_results(paths):
        results = files.read_json(path, required=("config", "steps"), advice=ADVICE)
        config = results["config"]
        family = families.family_of(config)
        if f"{split}_elbo_bpd" not in results:
            raise DamagedFile(f"{path} has no {split}_elbo_bpd (keys: {sorted(results)}). {ADVICE}")
        strength_field = family.strength_argument
        records.append({"path": path, "kind": family.name,
                        "strength": config[strength_field] if strength_field else None,
                        "seed": config["seed"], "steps": results["steps"],
                        "elbo_bpd": results[f"{split}_elbo_bpd"], "kl_bpd": results[f"{split}_kl_bpd"],
                        "wall_time_s": results.get("wall_time_s"),
                        **convergence.convergence_of(os.path.dirname(path))})
    return records


def load_runs_csv(path):
    """The records of a ``runs.csv`` written by ``--runs_csv`` (so the figure and tables can be redrawn from the
    committed file alone, without the run folders)."""
    def number(text):
        return None if text in ("", "None") else float(text)

    if os.path.isdir(path):
        raise DamagedFile(f"{path} is a folder: --from_runs_csv takes a runs.csv file (give a search's folder as an "
                          "argument instead).")
    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    missing = [name for name in RUNS_CSV_COLUMNS if rows and name not in rows[0]]
    if missing or not rows:
        raise DamagedFile(f"{path} is not a runs.csv of tuning.frontier (" + (f"no column {', '.join(missing)}"
                          if missing else "no rows") + "). Write it again with --runs_csv.")
    records = []
    for row in rows:
        record = {**row, "strength": number(row["strength"]), "seed": int(row["seed"]), "steps": int(row["steps"]),
                  "elbo_bpd": float(row["elbo_bpd"]), "kl_bpd": float(row["kl_bpd"])}
        for name in ("wall_time_s", "improvement_last_quarter_bpd", "kl_change_last_quarter_bpd"):
            if name in row:
                record[name] = number(row[name])
        if "converged" in row:
            record["converged"] = {"True": True, "False": False}.get(row["converged"])
        records.append(record)
    return records


def aggregate(records):
    """One row per (kind, strength): n seeds, mean, standard deviation (ddof=1; 0 for one seed) and the half-width of
    a Student-t 95% interval (NaN for one seed) of ELBO and KL, and how many of the runs converged."""
    groups = {}
    for record in records:
        groups.setdefault((record["kind"], record["strength"]), []).append(record)
    rows = []
    for (kind, strength), members in groups.items():
        row = {"kind": kind, "strength": strength, "n": len(members),
               "seeds": " ".join(str(member["seed"]) for member in sorted(members, key=lambda m: m["seed"]))}
        for metric in ("elbo_bpd", "kl_bpd"):
            values = np.array([member[metric] for member in members], np.float64)
            row[f"{metric}_mean"] = float(values.mean())
            row[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            row[f"{metric}_ci95"] = mean_ci(values)[1]
        row["converged"] = sum(member.get("converged") is True for member in members)
        rows.append(row)
    order = list(families.names())
    return sorted(rows, key=lambda row: (order.index(row["kind"]), row["strength"] or 0.0))


def compare(rows):
    """For each VB setting: its mean ELBO, GD's curve at its KL, and the gap (VB - GD; > 0: GD better)."""
    gd = [row for row in rows if row["kind"] == GD]
    comparison = []
    for row in (row for row in rows if row["kind"] == VB):
        at = curve_at(gd, row["kl_bpd_mean"])
        comparison.append({"beta": row["strength"], "kl_bpd": row["kl_bpd_mean"], "vb_elbo_bpd": row["elbo_bpd_mean"],
                           "gd_elbo_bpd_at_kl": at, "gap_bpd": row["elbo_bpd_mean"] - at})
    return comparison


def dominance(rows):
    """For each setting, the settings of *other* kinds that dominate it on the seed means: at least its KL and at
    most its ELBO, one of them strictly. The interpolated curve of :func:`compare` needs a monotone curve; this needs
    none, and is what "one frontier dominates the other" means. Returns one dict per setting, in ``rows`` order."""
    def label(row):
        return row["kind"] if row["strength"] is None else f"{row['kind']} {row['strength']:g}"

    def dominates(other, row):
        at_least_kl = other["kl_bpd_mean"] >= row["kl_bpd_mean"]
        at_most_elbo = other["elbo_bpd_mean"] <= row["elbo_bpd_mean"]
        same = (other["kl_bpd_mean"], other["elbo_bpd_mean"]) == (row["kl_bpd_mean"], row["elbo_bpd_mean"])
        return at_least_kl and at_most_elbo and not same

    return [{"setting": label(row), "kl_bpd": row["kl_bpd_mean"], "elbo_bpd": row["elbo_bpd_mean"],
             "dominated_by": ", ".join(label(other) for other in rows
                                       if other["kind"] != row["kind"] and dominates(other, row)) or "-"}
            for row in rows]


def plot(rows, records, out, split="test", floor=None):
    """Figure 2's axes, twice: on the left with the dataset's entropy floor (a dict from ``data.entropy_floor``, the
    line no model can cross) to show how far the models are from it; on the right zoomed on the models, where the
    GD-vs-VB differences (hundredths of a bit/dim) are visible. Seeds as small points, setting means with 95%
    intervals over seeds (±1 std where there is one seed), each kind's settings joined in order of bottleneck
    strength and labelled with it."""
    figure, (overview, zoom) = figures.pyplot().subplots(1, 2, figsize=(12.5, 5.0), dpi=120)
    for axes in (overview, zoom):
        _draw_models(axes, rows, records, labels=axes is zoom)
        axes.set_xlabel(f"VAE KL ({split}, bits/dim)")
        axes.set_ylabel(f"negative ELBO ({split}, bits/dim)")
        axes.grid(alpha=0.3)
    if floor is not None:
        overview.axhline(floor["floor_bpd"], color="grey", linestyle="--", linewidth=1,
                         label=f"entropy floor H(x | scene) = {floor['floor_bpd']:.3f}")
    overview.set_title("ELBO vs. VAE KL (lower right is better)")
    zoom.set_title("the same, zoomed on the models (labels: p or beta)")
    overview.legend(fontsize=8, loc="lower right", bbox_to_anchor=(1, 0.08))  # below the models, above the floor
    figure.tight_layout()
    figures.save_figure(figure, out)


def _draw_models(axes, rows, records, labels):
    """One kind after another: its seeds, its setting means with error bars, and (``labels``) their strengths,
    GD's above-left and the others' below-right of their points so that neighbouring settings stay readable."""
    for index, family in enumerate(families.all_families()):
        kind, (color, marker) = family.name, STYLES[index % len(STYLES)]
        mine = [row for row in rows if row["kind"] == kind]
        if not mine:
            continue
        seeds = [record for record in records if record["kind"] == kind]
        axes.scatter([r["kl_bpd"] for r in seeds], [r["elbo_bpd"] for r in seeds], color=color, marker=marker,
                     s=12, alpha=0.35, linewidths=0)
        line = sorted(mine, key=lambda row: row["strength"] or 0.0)
        bar = lambda row, metric: row[f"{metric}_std"] if math.isnan(row[f"{metric}_ci95"]) else row[f"{metric}_ci95"]
        axes.errorbar([r["kl_bpd_mean"] for r in line], [r["elbo_bpd_mean"] for r in line],
                      xerr=[bar(r, "kl_bpd") for r in line], yerr=[bar(r, "elbo_bpd") for r in line], color=color,
                      marker=marker, markersize=11 if marker in "*D" else 7,
                      linestyle="-" if len(line) > 1 else "none", capsize=2, label=family.label)
        if not labels:
            continue
        offset, align = ((-5, 5), "right") if kind == GD else ((5, -10), "left")
        for row in line:
            if row["strength"] is not None and not family.is_preset:
                axes.annotate(f"{row['strength']:g}", (row["kl_bpd_mean"], row["elbo_bpd_mean"]), fontsize=7,
                              xytext=offset, textcoords="offset points", color=color, ha=align)


def write_csv(rows, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = f"{path}.tmp"
    with open(temporary, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)


def format_table(rows, columns):
    """A fixed-width text table of ``rows`` (dicts) over ``columns``; floats with 4 decimals."""
    cells = [[f"{row[c]:.4f}" if isinstance(row[c], float) else str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(line, widths)) for line in cells]
    return "\n".join(lines)


FLAGS = flags.FLAGS


def define_flags():
    """This command's flags. Defined when it runs, not on import, and one by one: ``tuning.curves`` and
    ``tuning.probe`` import the functions above and share some of these flags (``--out``, ``--csv``, ``--floor``),
    which are defined once when their commands live in one process (as in the tests)."""
    cli.define_flag(flags.DEFINE_string, "from_runs_csv", None,
                    "Read the runs from this runs.csv instead of results.json files.")
    cli.define_flag(flags.DEFINE_string, "out", None, "Where to write the plot (.png).")
    cli.define_flag(flags.DEFINE_string, "csv", None, "Where to write the per-setting table (.csv).")
    cli.define_flag(flags.DEFINE_string, "runs_csv", None, "Where to write the per-run table (.csv).")
    cli.define_flag(flags.DEFINE_enum, "split", "test", ["test", "validation"], "Which evaluation to use.")
    cli.define_flag(flags.DEFINE_string, "floor", None,
                    "entropy_floor.json (python -m studies.figure2_8x8.entropy_floor) to draw on the plot.")
    cli.define_flag(flags.DEFINE_string, "gaps_csv", None,
                    "Where to write the GD-vs-VB comparisons per VB setting: the interpolated gaps with bootstrap "
                    "and paired intervals, then the differences to the nearest GD setting (.csv).")


def main(argv):
    """``argv[1:]``: results.json files or folders holding them (or none with --from_runs_csv)."""
    paths = argv[1:]
    if bool(paths) == bool(FLAGS.from_runs_csv):
        raise app.UsageError("Give results.json files or folders, or --from_runs_csv, not both.")
    try:
        records = load_runs_csv(FLAGS.from_runs_csv) if FLAGS.from_runs_csv else load_runs(paths, FLAGS.split)
    except (FileNotFoundError, KeyError) as error:
        raise app.UsageError(error.args[0] if error.args else str(error))  # a KeyError's str() adds quotes
    if not records:
        raise app.UsageError(f"No results.json found under {paths}.")
    report(records, FLAGS.split, FLAGS.out, FLAGS.csv, FLAGS.runs_csv, FLAGS.gaps_csv,
           files.read_json(FLAGS.floor) if FLAGS.floor else None)
    return 0


def report(records, split="test", out=None, csv_path=None, runs_csv=None, gaps_csv=None, floor=None):
    """Prints the tables of ``records`` (from :func:`load_runs` or :func:`load_runs_csv`) and writes the files
    given: the plot ``out``, the per-setting ``csv_path``, the per-run ``runs_csv``, the GD-vs-VB ``gaps_csv``."""
    rows = aggregate(records)
    print(f"{len(records)} runs, {len(rows)} settings ({split} split, bits/dim; mean and 95% t-interval "
          "half-width over seeds; converged: runs meeting the criterion of tuning/convergence.py)")
    print(format_table(rows, ["kind", "strength", "n", "elbo_bpd_mean", "elbo_bpd_ci95", "kl_bpd_mean",
                              "kl_bpd_ci95", "converged"]))
    comparison = compare(rows)
    if comparison and any(row["kind"] == GD for row in rows):
        print("\nVB settings against the GD curve at the same KL (gap > 0: GD has the better ELBO; nan: outside "
              "GD's KL range)")
        print(format_table(comparison, list(comparison[0])))
        gaps = bootstrap_gaps(records)
        print("\nThe same gaps with 95% bootstrap intervals over seeds (resampled jointly, keeping the pairing), the "
              "share of resamples where GD is better, and where VB's KL falls inside GD's range")
        print(format_table(gaps, list(gaps[0])))
        pairs = nearest_pairs(records)
        print("\nEach VB setting against the GD setting with the nearest mean KL, seed by seed (no interpolation): "
              "mean and 95% t-interval half-width of VB - GD (ELBO < 0: VB better; KL > 0: VB carries more)")
        print(format_table(pairs, list(pairs[0])))
        if gaps_csv:  # one row per VB setting: the interpolated gaps, then the nearest-setting differences
            by_beta = {pair["beta"]: pair for pair in pairs}
            write_csv([{**gap, **{f"nearest_{key}" if key == "seeds" else key: value
                                  for key, value in by_beta[gap["beta"]].items() if key != "beta"}}
                       for gap in gaps], gaps_csv)
    print("\nDominance on the seed means (dominated_by: settings of another kind with at least this KL and at most "
          "this ELBO)")
    print(format_table(dominance(rows), ["setting", "kl_bpd", "elbo_bpd", "dominated_by"]))
    if csv_path:
        write_csv(rows, csv_path)
    if runs_csv:
        write_csv(records, runs_csv)
    if out:
        plot(rows, records, out, split, floor)
    return rows


def run():
    """Console-script entry point (see setup.cfg)."""
    define_flags()
    cli.run(main, arguments=True)


if __name__ == "__main__":
    run()
