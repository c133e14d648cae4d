"""The study's primary analysis, as PLAN.md section 7 fixes it, written before any main run.

Per bed and KL target the seeds pair a GD run with a VB run; d = GD - VB of an evaluation (bits/dim, < 0: GD better).
- :func:`paired_comparison`: the mean difference with its 95% t-interval, the two-sided paired t-test and, beside
  it, the exact Wilcoxon signed-rank test (with 5 pairs its smallest two-sided p is 0.0625);
- :func:`holm`: Holm-Bonferroni over the family (the 4 comparisons of the primary evaluation) at 5%;
- :func:`verdict`: what the plan says the per-target outcomes of one bed count as;
- :func:`budget_sensitivity`: the same paired difference of the held-out ELBO along the learning curves (PLAN.md
  section 4), and whether the answer depends on the training budget.
"""

import math

import numpy as np
from scipy import stats

ALPHA = 0.05
EQUIVALENCE_BPD = 0.03  # "no difference larger than 0.03 bits/dim" needs the whole interval inside +-0.03
SENSITIVITY_STEPS = (1750, 2625, 3500)


def paired_comparison(gd, vb, confidence=0.95):
    """``gd``, ``vb``: one value per seed, pair-aligned. Returns n, the mean difference (GD - VB) and its
    t-interval, the paired t-test's p and the exact Wilcoxon signed-rank test's p (two-sided; None when every
    difference is 0)."""
    gd, vb = np.asarray(gd, float), np.asarray(vb, float)
    if gd.shape != vb.shape or gd.ndim != 1 or len(gd) < 2:
        raise ValueError(f"gd and vb must be pair-aligned lists of at least 2 values. Received: {gd.shape}, "
                         f"{vb.shape}")
    d = gd - vb
    n, mean = len(d), float(d.mean())
    se = float(d.std(ddof=1)) / math.sqrt(n)
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * se
    t_p = float(stats.ttest_rel(gd, vb).pvalue) if se > 0 else (1.0 if mean == 0 else 0.0)
    wilcoxon_p = float(stats.wilcoxon(d, method="exact").pvalue) if np.any(d != 0) else None
    return {"n": n, "mean_difference_bpd": mean, "low_bpd": mean - half, "high_bpd": mean + half,
            "t_test_p": t_p, "wilcoxon_p": wilcoxon_p}


def holm(p_values, alpha=ALPHA):
    """Holm-Bonferroni: ``(adjusted p values, rejected)`` in the input order, family level ``alpha``."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted, [value <= alpha for value in adjusted]


def direction(comparison, rejected):
    """"GD" or "VB" when the Holm-adjusted test rejects (the better arm), else None."""
    if not rejected:
        return None
    return "GD" if comparison["mean_difference_bpd"] < 0 else "VB"


def verdict(outcomes):
    """The plan's reading of one bed from its targets' ``[(comparison, rejected)]``: "support", "against",
    "mixed" or "inconclusive" (with "no difference larger than 0.03 bits/dim" only when every interval lies inside
    +-0.03)."""
    winners = {direction(comparison, rejected) for comparison, rejected in outcomes} - {None}
    if winners == {"GD"}:
        return "support for the paper"
    if winners == {"VB"}:
        return "against the paper"
    if winners == {"GD", "VB"}:
        return "mixed"
    inside = all(-EQUIVALENCE_BPD < c["low_bpd"] and c["high_bpd"] < EQUIVALENCE_BPD for c, _ in outcomes)
    return "inconclusive" + (" (no difference larger than 0.03 bits/dim)" if inside else "")


def curve_value(curve, step):
    """The held-out ELBO of a learning curve (``[{"step", "elbo_bpd"}]``) at the point nearest ``step``."""
    return min(curve, key=lambda point: abs(point["step"] - step))["elbo_bpd"]


def budget_sensitivity(gd_curves, vb_curves, steps=SENSITIVITY_STEPS):
    """The paired comparison of the curves' held-out ELBO at each of ``steps`` (pair-aligned curves), and whether
    the answer depends on the budget: the mean difference changes sign, or its value at the last step lies
    outside the interval at the first."""
    at = {step: paired_comparison([curve_value(c, step) for c in gd_curves], [curve_value(c, step) for c in vb_curves])
          for step in steps}
    first, last = at[steps[0]], at[steps[-1]]
    signs = {np.sign(comparison["mean_difference_bpd"]) for comparison in at.values()} - {0.0}
    depends = len(signs) > 1 or not first["low_bpd"] <= last["mean_difference_bpd"] <= first["high_bpd"]
    return {"by_step": at, "depends_on_budget": bool(depends)}
