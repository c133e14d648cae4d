"""What a search optimises, computed from a trial's results (the trainer's ``results.json``).

- ``elbo_bpd`` (minimise): the negative ELBO in bits/dim, the fit to the data.
- ``kl_bpd`` (maximise): the VAE KL in bits/dim, how much the latents are used.
- ``elbo_bpd_at_kl``: "the best ELBO with KL at least T bits/dim", what a user who wants the latents used asks for.
  Its score (minimised) is the ELBO for a trial that meets the constraint, and ``ELBO + penalty * (T - KL)`` for one
  that falls short, so the oracle (Bayesian optimisation above all) sees a continuous landscape that slopes towards
  the feasible region. The score alone does not make every feasible trial beat every infeasible one (a trial 0.001
  bits/dim short with a much better ELBO can score better), so the search report selects the best trial *strictly*:
  the best ELBO among trials that meet the constraint (:func:`best_feasible`).

The split: ``test`` (the paper's Figure 2 reports the test set) or ``validation`` (held-out training images; see
RunConfig.validation_examples), which a search that selects settings should use.
"""

import math

import keras_tuner as kt

NAMES = ("elbo_bpd", "kl_bpd", "elbo_bpd_at_kl")
SPLITS = ("test", "validation")
DEFAULT_PENALTY = 100.0  # bits/dim of score per bit/dim of KL shortfall


class Objectives:
    """Turns a trial's results into the scores KerasTuner sees.

    Args:
        name: one of :data:`NAMES`.
        split: ``"test"`` or ``"validation"``: which evaluation of the run is scored.
        min_kl_bpd: the constraint T (bits/dim, >= 0) of ``elbo_bpd_at_kl``.
        penalty: score per bit/dim of KL shortfall (> 0) of ``elbo_bpd_at_kl``.
    """

    def __init__(self, name="elbo_bpd", split="test", min_kl_bpd=None, penalty=DEFAULT_PENALTY):
        if name not in NAMES:
            raise ValueError(f"Argument `objective` must be one of {list(NAMES)}. Received: objective={name!r}")
        if split not in SPLITS:
            raise ValueError(f"Argument `objective_split` must be one of {list(SPLITS)}. Received: {split!r}")
        if name == "elbo_bpd_at_kl":
            if min_kl_bpd is None or not 0 <= min_kl_bpd < math.inf:
                raise ValueError("Argument `min_kl_bpd` must be a finite number >= 0 with "
                                 f"objective=elbo_bpd_at_kl. Received: min_kl_bpd={min_kl_bpd!r}")
            if not 0 < penalty < math.inf:
                raise ValueError(f"Argument `kl_penalty` must be a finite number > 0. Received: {penalty!r}")
        self.name, self.split, self.min_kl_bpd, self.penalty = name, split, min_kl_bpd, penalty

    @property
    def keras_tuner_objective(self):
        direction = "max" if self.name == "kl_bpd" else "min"
        return kt.Objective(self.name, direction=direction)

    def metrics(self, results):
        """``(elbo_bpd, kl_bpd)`` of ``results`` on this objective's split."""
        prefix = f"{self.split}_"
        if f"{prefix}elbo_bpd" not in results:
            raise KeyError(f"The run's results have no {prefix}elbo_bpd (is validation_examples > 0 for "
                           f"objective_split=validation?). Keys: {sorted(results)}")
        return results[f"{prefix}elbo_bpd"], results[f"{prefix}kl_bpd"]

    def shortfall(self, kl_bpd):
        return max(0.0, self.min_kl_bpd - kl_bpd) if self.min_kl_bpd is not None else 0.0

    def scores(self, results):
        """The dict a trial reports: every objective's value on the split (KerasTuner reads ``self.name``)."""
        elbo, kl = self.metrics(results)
        scores = {"elbo_bpd": elbo, "kl_bpd": kl}
        if self.name == "elbo_bpd_at_kl":
            scores["elbo_bpd_at_kl"] = elbo + self.penalty * self.shortfall(kl)
        return scores

    def best_feasible(self, trials):
        """The trial (a dict with ``elbo_bpd`` and ``kl_bpd``) with the best ELBO among those meeting the KL
        constraint (if none meets it, the best ELBO of all, whose shortfall the caller reports), or ``None`` only
        if ``trials`` is empty."""
        feasible = [trial for trial in trials if self.shortfall(trial["kl_bpd"]) == 0.0]
        if self.name == "kl_bpd":
            return max(trials, key=lambda trial: trial["kl_bpd"], default=None)
        return min(feasible or trials, key=lambda trial: trial["elbo_bpd"], default=None)
