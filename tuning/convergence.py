"""When is a run converged? The criterion of the Figure 2 protocol, read from a run's learning curve.

A run is converged when its held-out negative ELBO improved by less than ``TOLERANCE_BPD`` over the last quarter of
its training (from the curve point nearest 75% of the final step to the final point). The curve is the trainer's
``curve.jsonl`` (``--curve_points``), evaluated in test mode on held-out images, so the criterion does not depend on
training-time noise. The VAE KL's change over the same quarter is reported beside it: the criterion is on the ELBO,
the quantity compared, but a KL still moving says the latents' use has not settled (it is information, not part of
the criterion).
"""

import math
import os

from gd_bottleneck.training import files
from gd_bottleneck.training.callbacks import read_curve

TOLERANCE_BPD = 0.02


def last_quarter_change(curve, metric):
    """``metric`` at the curve's end minus at its point nearest 75% of the final step; NaN without two points."""
    if len(curve) < 2:
        return math.nan
    final = curve[-1]
    reference = min(curve[:-1], key=lambda point: abs(point["step"] - 0.75 * final["step"]))
    return final[metric] - reference[metric]


def last_quarter_improvement(curve):
    """How much the held-out negative ELBO fell over the last quarter (bits/dim; > 0: still improving)."""
    return -last_quarter_change(curve, "elbo_bpd")


def convergence_of(model_dir, tolerance=TOLERANCE_BPD):
    """``{"improvement_last_quarter_bpd", "converged", "kl_change_last_quarter_bpd"}`` of the run in ``model_dir``
    (``converged`` is None without a curve of at least two points).

    Only the curve up to the step of the run's ``results.json`` counts (when it has one): a run being trained further
    (tuning.extend), or whose extension was interrupted, already has later points, which belong to a result not yet
    written."""
    curve = read_curve(os.path.join(model_dir, "curve.jsonl"))
    results = os.path.join(model_dir, "results.json")
    if os.path.exists(results):
        steps = files.read_json(results, required=("steps",))["steps"]
        curve = [point for point in curve if point["step"] <= steps]
    improvement = last_quarter_improvement(curve)
    return {"improvement_last_quarter_bpd": improvement,
            "converged": None if math.isnan(improvement) else bool(improvement < tolerance),
            "kl_change_last_quarter_bpd": last_quarter_change(curve, "kl_bpd")}


PLATEAU_TOLERANCE_BPD = 0.01


def plateau_of(model_dir, tolerance=PLATEAU_TOLERANCE_BPD):
    """The two-sided rule: ``{"change_last_quarter_bpd", "status", "kl_change_last_quarter_bpd"}`` where the change
    is the held-out negative ELBO at the end minus at 75% of the run (< 0: improved) and ``status`` is ``"plateau"``
    (|change| < ``tolerance``), ``"improving"``, ``"worsening"`` (a run that got worse is not converged), or None
    without two curve points. Only the curve up to the step of ``results.json`` counts (see :func:`convergence_of`)."""
    curve = read_curve(os.path.join(model_dir, "curve.jsonl"))
    results = os.path.join(model_dir, "results.json")
    if os.path.exists(results):
        steps = files.read_json(results, required=("steps",))["steps"]
        curve = [point for point in curve if point["step"] <= steps]
    change = last_quarter_change(curve, "elbo_bpd")
    if math.isnan(change):
        status = None
    elif abs(change) < tolerance:
        status = "plateau"
    else:
        status = "improving" if change < 0 else "worsening"
    return {"change_last_quarter_bpd": change, "status": status,
            "kl_change_last_quarter_bpd": last_quarter_change(curve, "kl_bpd")}
