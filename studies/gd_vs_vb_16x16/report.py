"""The study's tables from its kept results alone (no checkpoint needed): runs.csv, and for the pilots, the KL
targets, the matched strengths and the power calculation of PLAN.md section 6; for the main runs, the answer of
section 7 (``main_analysis``).

    python -m studies.gd_vs_vb_16x16.report pilot      # results/pilot/runs.csv and pilot.txt (printed too)
    python -m studies.gd_vs_vb_16x16.report main       # results/main/runs.csv, main.txt and main.json: the answer

Each kept run (``results/<phase>/<id>/``) gives one row: its setting (from the phase's CSV), steps, the plateau
reading (``study.json``), the four bounds on the first 2,000 test images (``bounds.json``), the paper's test ELBO
and KL on the whole test split (``results.json``) and its wall time with the CPU that made it (runs kept before
the machine was recorded say where RUNLOG.md tells it).
"""

import collections
import csv
import io
import json
import math
import os

import numpy as np
from absl import app, flags
from scipy import stats

from gd_bottleneck import cli
from gd_bottleneck.training import files
from studies.gd_vs_vb_16x16 import main_analysis

FLAGS = flags.FLAGS
flags.DEFINE_string("main_for", None, "Also write this bed's main runs into main.csv (PLAN.md section 8), from its "
                    "pilots' matched strengths and --seeds.")
flags.DEFINE_integer("seeds", 5, "Seeds per matched pair for --main_for (the plan: max(5, n), capped by the budget).",
                     lower_bound=5)
flags.DEFINE_list("baselines", ["none:3", "auxiliary_decoder:3"], "Baselines for --main_for as KIND:SEEDS (the plan: "
                  "3 seeds each; section 9 cuts them before pair seeds when the budget is short).")

STUDY = os.path.dirname(os.path.abspath(__file__))
BOUNDS = ("elbo_bpd", "iwae_bpd", "noise_marginal_bpd", "kl_bpd")
GD, VB = "gaussian_dropout", "variational"
DETECTABLE_BPD, ALPHA, POWER = 0.03, 0.05, 0.8
LOW_TARGET_RATE, HIGH_TARGET_RATE = 0.5, 0.99  # the plan's KL targets: the pilot KL of GD at these rates


def planned_rows(phase):
    """The phase CSV's rows (id, bed, kind, strength, seed as strings)."""
    with open(os.path.join(STUDY, f"{phase}.csv")) as stream:
        return list(csv.DictReader(stream))


def kept_rows(phase):
    """One dict per kept run of ``phase``, in the phase CSV's order (runs not kept yet are left out)."""
    rows = []
    for run in planned_rows(phase):
        folder = os.path.join(STUDY, "results", phase, run["id"])
        if not os.path.exists(os.path.join(folder, "study.json")):
            continue
        study = files.read_json(os.path.join(folder, "study.json"))
        row = {"id": run["id"], "bed": run["bed"], "kind": run["kind"], "strength": float(run["strength"]),
               "seed": int(run["seed"]), "status": study.get("status")}
        if study.get("status") != "diverged":
            results = files.read_json(os.path.join(folder, "results.json"))
            (entry,) = files.read_json(os.path.join(folder, "bounds.json"))["entries"]
            row.update(steps=results["steps"], epochs=study["epochs"],
                       change_last_quarter_bpd=study["change_last_quarter_bpd"],
                       **{name: entry["means"][name]["mean"] for name in BOUNDS},
                       test_elbo_bpd=results["test_elbo_bpd"], test_kl_bpd=results["test_kl_bpd"],
                       wall_time_s=results["wall_time_s"],
                       cpu=study.get("machine", {}).get("cpu", "CPU not recorded (RUNLOG.md)"))
        rows.append(row)
    return rows


def kept_curves(rows, folder):
    """``{run id: [{"step", "elbo_bpd", ...}]}``: each kept run's held-out learning curve (``curve.jsonl``)."""
    curves = {}
    for row in rows:
        path = os.path.join(folder, row["id"], "curve.jsonl")
        if os.path.exists(path):
            with open(path) as stream:
                curves[row["id"]] = [json.loads(line) for line in stream if line.strip()]
    return curves


def transformed_strength(kind, strength):
    """The axis KL is interpolated on: log(p / (1 - p)) for a Gaussian dropout rate, log(beta) for a VB beta."""
    return math.log(strength / (1.0 - strength)) if kind == GD else math.log(strength)


def strength_for_kl(points, kind, kl):
    """The strength at which the piecewise-linear curve of KL against :func:`transformed_strength` through
    ``points`` ([(strength, kl)]) reaches ``kl``; None outside the curve's KL range (no extrapolation)."""
    points = sorted((transformed_strength(kind, strength), value) for strength, value in points)
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if min(y0, y1) <= kl <= max(y0, y1) and y0 != y1:
            x = x0 + (kl - y0) * (x1 - x0) / (y1 - y0)
            return 1.0 / (1.0 + math.exp(-x)) if kind == GD else math.exp(x)
    return None


def seeds_needed(sd_difference, detectable=DETECTABLE_BPD, alpha=ALPHA, power=POWER, most=100):
    """The smallest n with t(1 - alpha/2, n - 1) + t(power, n - 1) <= detectable * sqrt(n) / sd_difference (a
    two-sided paired t-test's normal-approximation power formula with t quantiles); None if above ``most``."""
    for n in range(2, most + 1):
        if stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1) <= detectable * math.sqrt(n) / sd_difference:
            return n
    return None


def pilot_report(rows):
    """The plan's section-6 outcome from the pilot rows, as text lines."""
    lines = []
    for bed in sorted({row["bed"] for row in rows}):
        kept = [row for row in rows if row["bed"] == bed and row.get("kl_bpd") is not None]
        first = {(row["kind"], row["strength"]): row for row in kept if row["seed"] == 100}
        lines.append(f"\n== {bed}: KL (bits/dim, first 2,000 test images) by strength, seed 100")
        for (kind, strength), row in sorted(first.items()):
            lines.append(f"  {kind:<17} {strength:<6} KL {row['kl_bpd']:.4f}  elbo {row['elbo_bpd']:.4f}  "
                         f"noise-marginal {row['noise_marginal_bpd']:.4f}  plateau {row['status']}")
        pairs = matched_pairs(rows, bed, planned_pilots(bed))
        if pairs is None:
            lines.append("  KL targets: not yet (every seed-100 pilot of the bed is needed, and overlapping KL ranges)")
        for name, rate, beta, kl in pairs or ():
            gd_kl = first[(GD, LOW_TARGET_RATE if name == "low" else HIGH_TARGET_RATE)]["kl_bpd"]
            note = "" if kl == gd_kl else f"  (GD's pilot KL {gd_kl:.4f} is outside VB's range: clamped, PLAN.md 6.1)"
            lines.append(f"  target {name}: KL {kl:.4f}  GD p = {round(rate, 4)}  VB beta = {round(beta, 4)}{note}")
        for kind, strength in ((GD, LOW_TARGET_RATE), (VB, 0.1)):
            pair = [row for row in kept if (row["kind"], row["strength"]) == (kind, strength)]
            if len(pair) == 2:
                sds = {name: abs(pair[0][name] - pair[1][name]) / math.sqrt(2) for name in BOUNDS}
                lines.append(f"  seed sd of {kind} {strength} (2 seeds): " +
                             ", ".join(f"{name} {value:.4f}" for name, value in sds.items()))
    return lines


def detectable_difference(sd_difference, seeds, alpha=ALPHA, power=POWER):
    """The difference (bits/dim) a two-sided paired t-test at ``alpha`` detects with ``power`` from ``seeds`` pairs,
    by the same formula as :func:`seeds_needed`: what a seed count capped by the budget still resolves."""
    return (stats.t.ppf(1 - alpha / 2, seeds - 1) + stats.t.ppf(power, seeds - 1)) * sd_difference / math.sqrt(seeds)


def power_lines(rows, planned_seeds=None):
    """Per bed, the number of seeds (PLAN.md 6.2) from the larger per-arm seed sd of the primary evaluation (GD p = 0.5
    and VB beta = 0.1 at seeds 100 and 101), and the difference the bed's seeds detect (``planned_seeds``:
    ``{bed: seeds}``). Beside it, exploratory: the
    sd of the two seeds' GD - VB differences (those two settings are not a matched pair)."""
    lines = []
    for bed in sorted({row["bed"] for row in rows}):
        by_seed = {}
        for kind, strength in ((GD, LOW_TARGET_RATE), (VB, 0.1)):
            for row in rows:
                if (row["bed"], row["kind"], row["strength"]) == (bed, kind, strength) and "kl_bpd" in row:
                    by_seed.setdefault(row["seed"], {})[kind] = row["noise_marginal_bpd"]
        if len(by_seed) != 2 or any(len(arms) != 2 for arms in by_seed.values()):
            lines.append(f"\npower, {bed}: not yet (needs both arms' seed-101 pilots)")
            continue
        first, second = by_seed.values()
        arm_sd = max(abs(first[kind] - second[kind]) / math.sqrt(2) for kind in (GD, VB))
        sd_difference = math.sqrt(2) * arm_sd
        needed, seeds = seeds_needed(sd_difference), (planned_seeds or {}).get(bed)
        lines.append(f"\npower, {bed}: larger per-arm seed sd {arm_sd:.4f}, sd of a paired difference <= "
                     f"{sd_difference:.4f}; seeds for {DETECTABLE_BPD} bits/dim at 5%, 80% power: "
                     f"{needed or 'more than 100'}; with the 8x8 study's paired sd 0.016: {seeds_needed(0.016)}")
        if seeds:
            detectable = detectable_difference(sd_difference, seeds)
            lines.append(f"  with {seeds} seeds a paired t-test at 5% detects {detectable:.3f} bits/dim with 80% power")
        paired_sd = abs((first[GD] - first[VB]) - (second[GD] - second[VB])) / math.sqrt(2)
        lines.append(f"  exploratory: sd of the pilots' paired GD - VB difference {paired_sd:.4f} (2 seeds); with it "
                     f"{seeds_needed(paired_sd) or 'more than 100'} seeds" + (
                         f", and {seeds} seeds detect {detectable_difference(paired_sd, seeds):.3f}" if seeds else ""))
    return lines


BED_TAGS = {"shapes16": "shapes", "photos16": "photos"}
BASELINE_WEIGHTS = {"none": 0.0, "auxiliary_decoder": 1.0}  # the strength column of a baseline run


def main_runs(bed, pairs, seeds, baselines=(("none", 3), ("auxiliary_decoder", 3))):
    """The main phase's runs of ``bed`` (PLAN.md section 7), as main.csv rows: for each seed (seed-major, so that a
    phase stopped part-way has every setting at its first seeds), each matched pair ``(target name, GD rate, VB
    beta)`` of ``pairs`` as two adjacent runs, then each baseline ``(kind, seeds)`` of ``baselines`` for its first
    seeds (the plan's 3; section 9 cuts baselines before pair seeds when the budget is short)."""
    tag, rows = BED_TAGS[bed], []
    for seed in range(seeds):
        for target, rate, beta in pairs:
            rows.append({"id": f"m-{tag}-{target}-gd{rate:.4g}-s{seed}", "bed": bed, "kind": GD,
                         "strength": f"{rate:.4g}", "seed": seed})
            rows.append({"id": f"m-{tag}-{target}-vb{beta:.4g}-s{seed}", "bed": bed, "kind": VB,
                         "strength": f"{beta:.4g}", "seed": seed})
        rows += [{"id": f"m-{tag}-{kind}-s{seed}", "bed": bed, "kind": kind,
                  "strength": f"{BASELINE_WEIGHTS[kind]:g}", "seed": seed}
                 for kind, count in baselines if seed < count]
    return rows


def parse_baselines(entries):
    """``["none:3", "auxiliary_decoder:0"]`` -> ``[("none", 3), ("auxiliary_decoder", 0)]``, checked."""
    parsed = []
    for entry in entries:
        kind, _, count = entry.partition(":")
        if kind not in BASELINE_WEIGHTS or not count.isdigit():
            raise app.UsageError(f"Flag --baselines takes KIND:SEEDS with KIND in {sorted(BASELINE_WEIGHTS)} and "
                                 f"SEEDS >= 0. Received: {entry!r}")
        parsed.append((kind, int(count)))
    return parsed


def planned_pilots(bed):
    """``{(kind, strength)}`` of ``bed``'s seed-100 pilots in pilot.csv: the runs the KL targets wait for."""
    return {(row["kind"], float(row["strength"])) for row in planned_rows("pilot")
            if row["bed"] == bed and int(row["seed"]) == 100}


def matched_pairs(rows, bed, planned=None):
    """``[(target name, GD rate, VB beta, target KL)]`` of ``bed`` from its seed-100 pilots (PLAN.md 6.1), or None
    while a pilot of ``planned`` (``{(kind, strength)}``; default: GD p = 0.5 and 0.99 and two VB pilots) is missing.

    Each target is GD's pilot KL at p = 0.5 or 0.99 when both arms' pilots reach it; otherwise the plan's "nearest
    value inside both arms' ranges": the KL clamped into the overlap of the two arms' pilot KL ranges, with the GD
    rate then interpolated like the VB beta. None also when the ranges do not overlap (no KL can be matched)."""
    first = {(row["kind"], row["strength"]): row["kl_bpd"] for row in rows
             if row["bed"] == bed and row["seed"] == 100 and row.get("kl_bpd") is not None}
    gd = [(strength, kl) for (kind, strength), kl in first.items() if kind == GD]
    vb = [(strength, kl) for (kind, strength), kl in first.items() if kind == VB]
    needed = planned if planned is not None else {(GD, LOW_TARGET_RATE), (GD, HIGH_TARGET_RATE)}
    if not needed <= set(first) or {(GD, LOW_TARGET_RATE), (GD, HIGH_TARGET_RATE)} - set(first) or len(vb) < 2:
        return None
    lowest = max(min(kl for _, kl in gd), min(kl for _, kl in vb))
    highest = min(max(kl for _, kl in gd), max(kl for _, kl in vb))
    if lowest > highest:
        return None
    pairs = []
    for name, rate in (("low", LOW_TARGET_RATE), ("high", HIGH_TARGET_RATE)):
        kl = min(max(first[(GD, rate)], lowest), highest)
        if kl != first[(GD, rate)]:
            rate = strength_for_kl(gd, GD, kl)
        pairs.append((name, rate, strength_for_kl(vb, VB, kl), kl))
    return pairs


def write_main_csv(bed, pairs, seeds, baselines):
    """Adds ``bed``'s main runs (:func:`main_runs`) to the study's main.csv, keeping other beds' rows."""
    path = os.path.join(STUDY, "main.csv")
    kept = []
    if os.path.exists(path):
        with open(path) as stream:
            kept = [row for row in csv.DictReader(stream) if row["bed"] != bed]
    write_csv(kept + main_runs(bed, [pair[:3] for pair in pairs], seeds, baselines), path)
    return path


def progress_lines(rows, plan_rows):
    """How far the phase is: kept of planned runs per bed, the plateau readings (PLAN.md 4), and the median training
    wall time per CPU model (sessions run on different machines; RUNLOG.md lists pauses included in some)."""
    lines = [""]
    for bed in dict.fromkeys(row["bed"] for row in plan_rows):
        kept = [row for row in rows if row["bed"] == bed]
        planned = sum(row["bed"] == bed for row in plan_rows)
        readings = collections.Counter(row["status"] for row in kept)
        lines.append(f"{bed}: {len(kept)} of {planned} planned runs kept" + (
            "; plateau readings: " + ", ".join(f"{status} {count}" for status, count in sorted(readings.items()))
            if kept else ""))
    by_cpu = collections.defaultdict(list)
    for row in rows:
        if "wall_time_s" in row:
            by_cpu[row["cpu"]].append(row["wall_time_s"])
    for cpu, costs in by_cpu.items():
        lines.append(f"per-run training wall time, {cpu}: median {np.median(costs) / 60:.1f} min over "
                     f"{len(costs)} runs (one core each, two runs at a time; RUNLOG.md lists pauses in some)")
    return lines


def write_csv(rows, path):
    """One line per row, columns in order of first appearance; a missing or None value is an empty field (quoted
    where a value holds a comma: a CPU's model name may)."""
    names = list(dict.fromkeys(name for row in rows for name in row))
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(names)
    writer.writerows(["" if row.get(name) is None else row[name] for name in names] for row in rows)
    files.write_text_atomically(path, stream.getvalue())


def main(argv):
    if len(argv) != 2 or not os.path.exists(os.path.join(STUDY, f"{argv[1]}.csv")):
        raise app.UsageError("Give one phase: the name of a CSV in the study's folder (pilot, main).")
    phase = argv[1]
    rows = kept_rows(phase)
    if not rows:
        raise app.UsageError(f"No run of phase {phase!r} is kept yet (results/{phase}/).")
    folder = os.path.join(STUDY, "results", phase)
    write_csv(rows, os.path.join(folder, "runs.csv"))
    lines = [f"{len(rows)} kept runs of phase {phase} (results/{phase}/runs.csv)"]
    if phase == "pilot":
        lines += pilot_report(rows) + power_lines(rows, {FLAGS.main_for: FLAGS.seeds})
    lines += progress_lines(rows, planned_rows(phase))
    if phase == "main":
        result = main_analysis.answer(rows, planned_rows(phase), kept_curves(rows, folder))
        files.write_json_atomically(os.path.join(folder, "main.json"), result)
        lines += main_analysis.answer_lines(result)
    if FLAGS.main_for:
        pairs = matched_pairs(rows, FLAGS.main_for, planned_pilots(FLAGS.main_for))
        if pairs is None:
            raise app.UsageError(f"--main_for={FLAGS.main_for}: its pilots do not fix both targets yet.")
        baselines = parse_baselines(FLAGS.baselines)
        path = write_main_csv(FLAGS.main_for, pairs, FLAGS.seeds, baselines)
        lines.append(f"\nmain.csv: {FLAGS.main_for}, {FLAGS.seeds} seeds per pair, baselines "
                     f"{', '.join(f'{kind} {count} seeds' for kind, count in baselines)}, written to "
                     f"{os.path.relpath(path, STUDY)}")
    text = "\n".join(lines)
    print(text)
    files.write_text_atomically(os.path.join(folder, f"{phase}.txt"), text + "\n")


if __name__ == "__main__":
    cli.run(main, arguments=True)
