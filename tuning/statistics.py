"""Uncertainty for the Figure 2 comparison: confidence intervals over seeds, and GD against VB at matched KL.

Every setting is trained with the same seeds, and a seed fixes the initial weights, the noise streams and the data
order, so runs of different settings with the same seed are *paired*. Two tools:

- :func:`mean_ci`: a setting's mean over seeds with a Student-t 95% interval (few seeds: the t quantile is large,
  4.30 for 3 seeds, which is the honest width).
- :func:`bootstrap_gaps`: for every variational (VB) setting, the gap between its ELBO and the Gaussian dropout (GD)
  trade-off curve at the same KL (VB - GD; > 0: GD is better there), with a percentile interval from resampling
  the *seeds* (jointly for all settings, which keeps the pairing), and how often GD's curve is better. With n
  seeds there are only C(2n-1, n) distinct resamples (10 for 3 seeds), so the interval is coarse; it is reported
  with the number of seeds so a reader can judge. Beside it, the *paired* view: each seed's VB run against that same
  seed's GD curve, and the Student-t interval of those per-seed gaps (a seed whose VB KL lies outside its own GD
  curve's range gives no gap and is left out of that mean).
- :func:`nearest_pairs`: needs no interpolation. Each VB setting against the GD setting whose mean KL is nearest,
  run by run for the seeds both have: the VB - GD differences of ELBO and of KL with Student-t intervals. Where the
  KL difference's interval holds 0 and the ELBO difference's does not, one bottleneck is better at matched KL.
"""

import math

import numpy as np
from scipy import stats

from gd_bottleneck.bottlenecks import GaussianDropoutBottleneck, VariationalBottleneck

GD, VB = GaussianDropoutBottleneck.kind, VariationalBottleneck.kind  # the two kinds the paper's question compares


def curve_at(rows, kl):
    """The ELBO of the piecewise-linear curve through ``rows`` (sorted by KL) at ``kl``; NaN outside its range."""
    points = sorted((row["kl_bpd_mean"], row["elbo_bpd_mean"]) for row in rows)
    kls = [point[0] for point in points]
    if not points or kl < kls[0] or kl > kls[-1]:
        return math.nan
    return float(np.interp(kl, kls, [point[1] for point in points]))


def mean_ci(values, level=0.95):
    """``(mean, half_width)`` of a Student-t interval; half_width is NaN for fewer than 2 values."""
    values = np.asarray(values, np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan
    quantile = stats.t.ppf(0.5 + level / 2, df=len(values) - 1)
    return mean, float(quantile * values.std(ddof=1) / math.sqrt(len(values)))


def _setting_means(records, seeds):
    """Per (kind, strength): mean ELBO and KL over the runs whose seed is in ``seeds`` (repeats count repeatedly)."""
    by_setting = {}
    for record in records:
        by_setting.setdefault((record["kind"], record["strength"]), {})[record["seed"]] = record
    rows = []
    for (kind, strength), runs in by_setting.items():
        chosen = [runs[seed] for seed in seeds if seed in runs]
        if chosen:
            rows.append({"kind": kind, "strength": strength,
                         "elbo_bpd_mean": float(np.mean([run["elbo_bpd"] for run in chosen])),
                         "kl_bpd_mean": float(np.mean([run["kl_bpd"] for run in chosen]))})
    return rows


def _gaps(rows):
    gd = [row for row in rows if row["kind"] == GD]
    return {row["strength"]: row["elbo_bpd_mean"] - curve_at(gd, row["kl_bpd_mean"])
            for row in rows if row["kind"] == VB}


def paired_gaps(records, seeds):
    """``{beta: [gap of seed s for s in seeds]}``: each seed's VB run minus that seed's own GD curve at the run's KL
    (NaN where the seed lacks the run or the KL is outside its GD curve's range)."""
    per_seed = [_gaps(_setting_means(records, [seed])) for seed in seeds]
    betas = sorted({beta for gaps in per_seed for beta in gaps})
    return {beta: [gaps.get(beta, math.nan) for gaps in per_seed] for beta in betas}


def bootstrap_gaps(records, draws=2000, level=0.95, seed=0):
    """One dict per VB setting: its KL, the gap to GD's curve on all seeds, a percentile interval over seed
    resamples, the share of resamples where GD is better (gap > 0) and where VB's KL lies inside GD's range; then the
    paired view: the per-seed gaps (in seed order, space-separated), their mean and Student-t half-width."""
    seeds = sorted({record["seed"] for record in records})
    means = _setting_means(records, seeds)
    point = _gaps(means)
    paired = paired_gaps(records, seeds)
    vb_kl = {row["strength"]: row["kl_bpd_mean"] for row in means if row["kind"] == VB}
    rng = np.random.default_rng(seed)
    samples = {beta: [] for beta in point}
    for _ in range(draws):
        resampled = list(rng.choice(seeds, size=len(seeds), replace=True))
        for beta, gap in _gaps(_setting_means(records, resampled)).items():
            samples[beta].append(gap)
    result = []
    for beta in sorted(point):
        values = np.array(samples[beta], np.float64)
        inside = values[np.isfinite(values)]
        low, high = (np.percentile(inside, [50 * (1 - level), 50 * (1 + level)]) if len(inside) else
                     (math.nan, math.nan))
        result.append({"beta": beta, "kl_bpd": vb_kl[beta], "gap_bpd": point[beta], "gap_ci_low": float(low),
                       "gap_ci_high": float(high),
                       "p_gd_better": float(np.mean(inside > 0)) if len(inside) else math.nan,
                       "share_in_gd_range": float(len(inside) / len(values)), "seeds": len(seeds)})
        finite = [gap for gap in paired[beta] if math.isfinite(gap)]
        paired_mean, paired_ci95 = mean_ci(finite) if finite else (math.nan, math.nan)
        result[-1].update({"paired_gaps": " ".join(f"{gap:.4f}" for gap in paired[beta]),
                           "paired_mean": paired_mean, "paired_ci95": paired_ci95})
    return result


def nearest_pairs(records):
    """One dict per VB setting: the GD setting with the nearest mean KL, the seeds both have, and the mean and
    t-interval half-width of the per-seed differences VB - GD in ELBO and KL (ELBO < 0: VB better; KL > 0: VB's
    latents carry more). Empty without GD settings."""
    seeds = sorted({record["seed"] for record in records})
    means = _setting_means(records, seeds)
    gd = [row for row in means if row["kind"] == GD]
    if not gd:
        return []
    runs = {(record["kind"], record["strength"], record["seed"]): record for record in records}
    result = []
    for vb in sorted((row for row in means if row["kind"] == VB), key=lambda row: row["strength"]):
        partner = min(gd, key=lambda row: abs(row["kl_bpd_mean"] - vb["kl_bpd_mean"]))
        shared = [seed for seed in seeds
                  if (VB, vb["strength"], seed) in runs and (GD, partner["strength"], seed) in runs]
        row = {"beta": vb["strength"], "nearest_gd_rate": partner["strength"], "seeds": len(shared)}
        for metric in ("elbo_bpd", "kl_bpd"):
            differences = [runs[(VB, vb["strength"], seed)][metric] - runs[(GD, partner["strength"], seed)][metric]
                           for seed in shared]
            row[f"{metric}_diff_mean"], row[f"{metric}_diff_ci95"] = (mean_ci(differences) if differences else
                                                                      (math.nan, math.nan))
        result.append(row)
    return result
