"""The review of this study's claims (the 16x16 study's PLAN.md, section 1), recomputed from its committed files.

    python -m studies.figure2_8x8.review      # prints, and writes studies/figure2_8x8/results/review.txt

Three readings, none of them planned before the runs (so every test here is labelled as chosen after seeing them):

- **Convergence**: per run, where its held-out ELBO curve (``curve.jsonl``, 12+ points) reaches its minimum, how
  much it still improved over the last half, and how far it rose after its minimum. The study's rule ("improved by
  less than 0.02 bits/dim over the last quarter") checks only for improvement: a run that got worse passes it.
- **The comparisons the README draws**, as paired tests over the seeds (paired t-test, and the exact two-sided sign
  test, whose smallest p with 3 seeds is 0.25): VB beta = 0.08 against GD p = 0.9 (noise off, and GD with its noise),
  and the strong end (GD p = 0.97 and 0.99 with their noise against VB beta = 1).
- **The interpolation gap**: GD's setting KLs around KL 0.07, where the README calls the two indistinguishable.
"""

import csv
import json
import os

import numpy as np
from scipy import stats

from gd_bottleneck import cli
from gd_bottleneck.training import files

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
GD, VB = "gaussian_dropout", "variational"


def read_csv(name):
    with open(os.path.join(RESULTS, name)) as stream:
        return list(csv.DictReader(stream))


def run_folder(results_path):
    """runs.csv's ``results/figure2/<search>/trial_NNN/run/results.json`` -> the committed run folder."""
    parts = results_path.split("/")
    return os.path.join(RESULTS, *parts[2:-1])


def curve_reading(curve):
    """``curve``: [{"step", "elbo_bpd"}] in step order. The minimum's step, whether it is the last point, the
    improvement over the last half (value at the first point at or after half the steps minus the last value; > 0:
    still improving) and the rise after the minimum (last value minus the minimum; > 0: got worse)."""
    steps = [point["step"] for point in curve]
    values = [point["elbo_bpd"] for point in curve]
    lowest = int(np.argmin(values))
    half = next(i for i, step in enumerate(steps) if step >= steps[-1] / 2)
    return {"min_step": steps[lowest], "last_step": steps[-1], "min_at_last": lowest == len(values) - 1,
            "last_half_improvement": values[half] - values[-1], "rise_after_min": values[-1] - values[lowest]}


def sign_test_p(differences):
    """Exact two-sided sign test (zeros dropped)."""
    signs = [d for d in differences if d != 0]
    return float(stats.binomtest(sum(d > 0 for d in signs), len(signs)).pvalue)


def paired(label, a, b, kl_a=None, kl_b=None):
    """One paired comparison ``a - b`` (bits/dim, per seed, same seed order) as a text line."""
    d = np.asarray(a) - np.asarray(b)
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    line = (f"{label}: d = {' '.join(f'{x:+.3f}' for x in d)}; mean {d.mean():+.3f} [{d.mean() - half:+.3f}, "
            f"{d.mean() + half:+.3f}], paired t p = {stats.ttest_rel(a, b).pvalue:.3f}, sign test p = "
            f"{sign_test_p(d):.2f}")
    if kl_a is not None:
        line += f"; KL difference {np.mean(np.asarray(kl_a) - np.asarray(kl_b)):+.3f}"
    return line


def by_setting(rows, value="elbo_bpd"):
    """``{(kind, strength): [value by seed 0, 1, 2]}`` and the same for KL."""
    values, kls = {}, {}
    for row in sorted(rows, key=lambda row: int(row["seed"])):
        key = (row["kind"], float(row["strength"] or 0))
        values.setdefault(key, []).append(float(row[value]))
        kls.setdefault(key, []).append(float(row["kl_bpd"]))
    return values, kls


def convergence_lines(runs):
    lines = ["== Convergence (held-out ELBO curves of all 42 runs; the study's rule: last-quarter improvement < 0.02)"]
    readings = []
    for row in runs:
        with open(os.path.join(run_folder(row["path"]), "curve.jsonl")) as stream:
            curve = sorted((json.loads(line) for line in stream if line.strip()), key=lambda point: point["step"])
        readings.append((row, curve_reading(curve)))
    main = [(row, r) for row, r in readings if "/search/" in row["path"]]
    at_last = sum(r["min_at_last"] for _, r in main)
    improvements = [r["last_half_improvement"] for _, r in main]
    lines.append(f"main grid: {at_last} of {len(main)} curves reach their minimum at their last point; over the last "
                 f"half they improved by {min(improvements):.3f} to {max(improvements):.3f} bits/dim (median "
                 f"{np.median(improvements):.3f})")
    rose = [(row, r) for row, r in readings if r["rise_after_min"] > 0.005]
    for row, r in rose:
        lines.append(f"  got worse after its minimum: {row['kind']} {row['strength']} seed {row['seed']}: minimum at "
                     f"step {r['min_step']} of {r['last_step']}, then +{r['rise_after_min']:.3f} bits/dim; the rule "
                     f"read it as converged ({row['converged']})")
    return lines


def comparison_lines(runs, noisy):
    values, kls = by_setting([row for row in runs if "/search_rescore/" not in row["path"]])
    lines = ["", "== The README's comparisons, paired by seed (chosen after seeing the results: post hoc)"]
    lines.append(paired("VB beta 0.08 - GD p 0.9, noise off", values[(VB, 0.08)], values[(GD, 0.9)],
                        kls[(VB, 0.08)], kls[(GD, 0.9)]))
    noisy_values, noisy_kls = by_setting(noisy, "noisy_elbo_bpd")
    noise_free, _ = by_setting(noisy, "noise_free_elbo_bpd")
    if len(noisy_values.get((GD, 0.9), [])) == 3 and len(noise_free.get((VB, 0.08), [])) == 3:
        lines.append(paired("VB beta 0.08 (noise off) - GD p 0.9 (with its noise)", noise_free[(VB, 0.08)],
                            noisy_values[(GD, 0.9)]))
    for rate in (0.97, 0.99):
        if len(noisy_values.get((GD, rate), [])) == 3:
            lines.append(paired(f"GD p {rate} (with its noise) - VB beta 1 (noise off)", noisy_values[(GD, rate)],
                                noise_free[(VB, 1.0)], noisy_kls[(GD, rate)], kls[(VB, 1.0)]))
    gd_kls = sorted((np.mean(kl), strength) for (kind, strength), kl in kls.items()
                    if kind == GD and strength <= 0.9)
    lines += ["", "== The interpolation at KL 0.07 (VB beta 0.02: mean KL "
              f"{np.mean(kls[(VB, 0.02)]):.3f}, seeds {', '.join(f'{k:.3f}' for k in kls[(VB, 0.02)])})",
              "GD's main-grid settings by mean KL: " + ", ".join(f"p {s:g}: {k:.3f}" for k, s in gd_kls)]
    return lines


def main(argv):
    del argv
    runs = read_csv("runs.csv")
    noisy = read_csv("noisy_evaluation.csv")
    text = "\n".join(convergence_lines(runs) + comparison_lines(runs, noisy)) + "\n"
    print(text, end="")
    files.write_text_atomically(os.path.join(RESULTS, "review.txt"), text)


if __name__ == "__main__":
    cli.run(main)
