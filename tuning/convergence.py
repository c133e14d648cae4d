"""When is a run converged? The criterion of the Figure 2 protocol, read from a run's learning curve.

A run is converged when its held-out negative ELBO improved by less than ``TOLERANCE_BPD`` over the last quarter of
its training (from the curve point nearest 75% of the final step to the final point). The curve is the trainer's
``curve.jsonl`` (``--curve_points``), evaluated in test mode on held-out images, so the criterion does not depend on
training-time noise.
"""

import math
import os

from gd_bottleneck.training.callbacks import read_curve

TOLERANCE_BPD = 0.02


def last_quarter_improvement(curve):
    """ELBO at ~75% of the run minus ELBO at its end (bits/dim; > 0: still improving); NaN without two points."""
    if len(curve) < 2:
        return math.nan
    final = curve[-1]
    reference = min(curve[:-1], key=lambda point: abs(point["step"] - 0.75 * final["step"]))
    return reference["elbo_bpd"] - final["elbo_bpd"]


def convergence_of(model_dir, tolerance=TOLERANCE_BPD):
    """``{"improvement_last_quarter_bpd", "converged"}`` of the run in ``model_dir`` (``converged`` is None without a
    curve of at least two points)."""
    improvement = last_quarter_improvement(read_curve(os.path.join(model_dir, "curve.jsonl")))
    return {"improvement_last_quarter_bpd": improvement,
            "converged": None if math.isnan(improvement) else bool(improvement < tolerance)}
