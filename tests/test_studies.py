"""The 16x16 study's pure helpers: matching strengths to a KL target, and the number of seeds the plan asks for."""

import math

import pytest
from scipy import stats

from studies.gd_vs_vb_16x16 import report


def test_strengths_are_interpolated_on_the_logit_of_p_and_the_log_of_beta():
    gd = [(0.5, 0.05), (0.9, 0.10), (0.99, 0.20)]
    # KL 0.075 lies halfway between p = 0.5 (logit 0) and p = 0.9 (logit log 9): p = 1 / (1 + 9 ** -0.5) = 0.75
    assert report.strength_for_kl(gd, "gaussian_dropout", 0.075) == pytest.approx(0.75)
    vb = [(0.1, 0.08), (0.03, 0.12)]  # KL falls as beta grows
    assert report.strength_for_kl(vb, "variational", 0.10) == pytest.approx(math.sqrt(0.03 * 0.1))
    assert report.strength_for_kl(vb, "variational", 0.2) is None  # no extrapolation
    assert report.strength_for_kl(gd, "gaussian_dropout", 0.01) is None


def test_the_seed_count_is_the_smallest_that_meets_the_power_formula():
    for sd in (0.01, 0.016, 0.03, 0.05):
        n = report.seeds_needed(sd)
        holds = lambda k: (stats.t.ppf(0.975, k - 1) + stats.t.ppf(0.8, k - 1)) <= 0.03 * math.sqrt(k) / sd  # noqa
        assert holds(n) and (n == 2 or not holds(n - 1))
        # The exact power of the paired t-test at that n (noncentral t) is near the 80% aimed at.
        critical = stats.t.ppf(0.975, n - 1)
        exact = 1 - stats.nct.cdf(critical, n - 1, 0.03 * math.sqrt(n) / sd)
        assert exact > 0.78  # never under-powered (conservative at small n: 0.97 at n = 4)
    assert report.seeds_needed(0.03) > report.seeds_needed(0.016)
    assert report.seeds_needed(1.0) is None  # beyond the cap


def test_the_main_phase_pairs_each_target_per_seed_and_adds_three_seeds_of_baselines():
    rows = report.main_runs("shapes16", [("low", 0.5, 0.12345), ("high", 0.99, 0.031)], seeds=5)
    assert len(rows) == 5 * 4 + 3 * 2 and len({row["id"] for row in rows}) == len(rows)
    assert [row["seed"] for row in rows[:6]] == [0] * 6  # seed-major: every setting at seed 0 first
    first = rows[:4]
    assert [(row["kind"], row["strength"]) for row in first] == [
        ("gaussian_dropout", "0.5"), ("variational", "0.1235"), ("gaussian_dropout", "0.99"), ("variational", "0.031")]
    baselines = [row for row in rows if row["kind"] in ("none", "auxiliary_decoder")]
    assert sorted({row["seed"] for row in baselines}) == [0, 1, 2] and len(baselines) == 6
    assert all(row["id"].startswith("m-shapes-") and row["bed"] == "shapes16" for row in rows)


def test_matched_pairs_take_the_targets_from_gd_and_interpolate_vb_and_wait_for_missing_pilots():
    def row(kind, strength, kl, seed=100, bed="shapes16"):
        return {"bed": bed, "kind": kind, "strength": strength, "seed": seed, "kl_bpd": kl}

    rows = [row("gaussian_dropout", 0.5, 0.06), row("gaussian_dropout", 0.99, 0.09), row("variational", 0.03, 0.04),
            row("variational", 0.1, 0.08), row("variational", 0.3, 0.12), row("variational", 0.1, 0.5, seed=101)]
    (low, high) = report.matched_pairs(rows, "shapes16")
    assert low[:2] == ("low", 0.5) and low[3] == 0.06 and high[:2] == ("high", 0.99) and high[3] == 0.09
    assert low[2] == pytest.approx(math.exp(math.log(0.03) + 0.5 * (math.log(0.1) - math.log(0.03))))
    assert report.matched_pairs(rows[1:], "shapes16") is None  # GD p = 0.5 not kept yet
    assert report.matched_pairs([r for r in rows if r["strength"] != 0.3], "shapes16") is None  # VB stops at 0.08
    assert report.matched_pairs(rows, "photos16") is None
