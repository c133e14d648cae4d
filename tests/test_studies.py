"""The studies' pure helpers: the 16x16 study's strength matching, seed counts, answer and figures, and the 8x8
study's review."""

import math

import pytest
from absl import app
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


def test_the_budget_cut_drops_baselines_not_pair_seeds_and_bad_baselines_are_refused():
    cut = report.main_runs("photos16", [("low", 0.5, 0.2), ("high", 0.99, 0.18)], seeds=7,
                           baselines=report.parse_baselines(["none:3", "auxiliary_decoder:0"]))
    assert len(cut) == 7 * 4 + 3
    assert {row["kind"] for row in cut} == {"gaussian_dropout", "variational", "none"}
    assert sorted(row["seed"] for row in cut if row["kind"] == "none") == [0, 1, 2]
    for bad in ("none", "nothing:3", "none:-1", "none:x"):
        with pytest.raises(app.UsageError, match="--baselines"):
            report.parse_baselines([bad])


def test_the_detectable_difference_inverts_the_seed_count_and_power_is_read_per_bed():
    for sd in (0.016, 0.05, 0.2):
        n = report.seeds_needed(sd, most=1000)
        assert report.detectable_difference(sd, n) <= 0.03 < report.detectable_difference(sd, n - 1)

    def row(bed, kind, strength, seed, value):
        return {"bed": bed, "kind": kind, "strength": strength, "seed": seed, "kl_bpd": 0.1,
                "noise_marginal_bpd": value}

    rows = [row("shapes16", "gaussian_dropout", 0.5, 100, 5.0), row("shapes16", "gaussian_dropout", 0.5, 101, 5.01),
            row("shapes16", "variational", 0.1, 100, 5.0), row("shapes16", "variational", 0.1, 101, 5.0),
            row("photos16", "gaussian_dropout", 0.5, 100, 5.0), row("photos16", "gaussian_dropout", 0.5, 101, 5.3),
            row("photos16", "variational", 0.1, 100, 5.0)]
    text = "\n".join(report.power_lines(rows, {"shapes16": 5}))
    # shapes16's sd (0.01 / sqrt(2) per arm) alone sets its count: photos16's larger spread does not leak into it.
    assert f"power, shapes16: larger per-arm seed sd {0.01 / math.sqrt(2):.4f}" in text
    assert f"seeds for 0.03 bits/dim at 5%, 80% power: {report.seeds_needed(0.01)};" in text
    assert "power, photos16: not yet" in text  # VB's seed 101 missing
    assert f"with 5 seeds a paired t-test at 5% detects {report.detectable_difference(0.01, 5):.3f}" in text


def test_matched_pairs_take_the_targets_from_gd_and_interpolate_vb_and_wait_for_missing_pilots():
    def row(kind, strength, kl, seed=100, bed="shapes16"):
        return {"bed": bed, "kind": kind, "strength": strength, "seed": seed, "kl_bpd": kl}

    rows = [row("gaussian_dropout", 0.5, 0.06), row("gaussian_dropout", 0.99, 0.09), row("variational", 0.03, 0.04),
            row("variational", 0.1, 0.08), row("variational", 0.3, 0.12), row("variational", 0.1, 0.5, seed=101)]
    (low, high) = report.matched_pairs(rows, "shapes16")
    assert low[:2] == ("low", 0.5) and low[3] == 0.06 and high[:2] == ("high", 0.99) and high[3] == 0.09
    assert low[2] == pytest.approx(math.exp(math.log(0.03) + 0.5 * (math.log(0.1) - math.log(0.03))))
    assert report.matched_pairs(rows[1:], "shapes16") is None  # GD p = 0.5 not kept yet
    planned = {("gaussian_dropout", 0.5), ("gaussian_dropout", 0.99), ("variational", 0.03), ("variational", 0.1),
               ("variational", 0.3)}
    without_vb03 = [r for r in rows if r["strength"] != 0.3]
    assert report.matched_pairs(without_vb03, "shapes16", planned) is None  # a planned pilot is missing: wait
    assert report.matched_pairs(rows, "photos16") is None


def test_a_target_outside_vbs_pilot_range_is_clamped_into_both_arms_ranges():
    def row(kind, strength, kl):
        return {"bed": "shapes16", "kind": kind, "strength": strength, "seed": 100, "kl_bpd": kl}

    gd = [row("gaussian_dropout", 0.5, 0.06), row("gaussian_dropout", 0.99, 0.09)]
    (low, high) = report.matched_pairs(gd + [row("variational", 0.03, 0.04), row("variational", 0.1, 0.08)],
                                       "shapes16")
    assert low == ("low", 0.5, pytest.approx(0.03 * (0.1 / 0.03) ** 0.5), 0.06)  # inside both ranges: unchanged
    # GD's 0.09 is above VB's highest KL 0.08: the target becomes 0.08, VB's beta 0.1 and GD's rate interpolated
    # on the logit: logit p = 0 + (0.08 - 0.06) / (0.09 - 0.06) * logit(0.99)
    expected_rate = 1 / (1 + math.exp(-(2 / 3) * math.log(0.99 / 0.01)))
    assert high == ("high", pytest.approx(expected_rate), pytest.approx(0.1), 0.08)
    disjoint = gd + [row("variational", 0.03, 0.01), row("variational", 0.1, 0.02)]
    assert report.matched_pairs(disjoint, "shapes16") is None  # no KL both arms reach


# --- the primary analysis (studies/gd_vs_vb_16x16/analysis.py), on numbers whose answers are worked out by hand ---

def test_the_paired_comparison_matches_the_formulas():
    from studies.gd_vs_vb_16x16 import analysis

    gd, vb = [5.20, 5.22, 5.19, 5.25, 5.21], [5.24, 5.25, 5.21, 5.30, 5.23]
    d = [-0.04, -0.03, -0.02, -0.05, -0.02]
    mean, sd = sum(d) / 5, math.sqrt(sum((x - sum(d) / 5) ** 2 for x in d) / 4)
    t = mean / (sd / math.sqrt(5))
    result = analysis.paired_comparison(gd, vb)
    assert result["mean_difference_bpd"] == pytest.approx(mean)
    half = 2.7764451051977987 * sd / math.sqrt(5)  # t(0.975, 4)
    assert (result["low_bpd"], result["high_bpd"]) == pytest.approx((mean - half, mean + half))
    assert result["t_test_p"] == pytest.approx(2 * stats.t.sf(abs(t), 4))
    assert result["wilcoxon_p"] == pytest.approx(0.0625)  # all 5 differences negative: 2 / 2^5, the smallest
    with pytest.raises(ValueError, match="pair-aligned"):
        analysis.paired_comparison([1.0, 2.0], [1.0])


def test_holm_adjusts_in_order_and_keeps_the_adjusted_values_monotone():
    from studies.gd_vs_vb_16x16 import analysis

    adjusted, rejected = analysis.holm([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.02, 0.03, 0.06, 0.06
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02]) and rejected == [True, False, False, True]


@pytest.mark.parametrize("means, rejected, expected", [
    ((-0.05, -0.01), (True, False), "support for the paper"),
    ((0.05, -0.01), (True, False), "against the paper"),
    ((-0.05, 0.05), (True, True), "mixed"),
    ((-0.01, 0.01), (False, False), "inconclusive (no difference larger than 0.03 bits/dim)"),
    ((-0.02, 0.01), (False, False), "inconclusive")])  # the first interval reaches -0.045: not inside +-0.03
def test_the_verdict_follows_the_plans_table(means, rejected, expected):
    from studies.gd_vs_vb_16x16 import analysis

    half = {(-0.01, 0.01): 0.015}.get(means, 0.025)
    outcomes = [({"mean_difference_bpd": m, "low_bpd": m - half, "high_bpd": m + half}, r)
                for m, r in zip(means, rejected)]
    assert analysis.verdict(outcomes) == expected


def test_budget_sensitivity_flags_a_difference_that_flips_along_the_curves():
    from studies.gd_vs_vb_16x16 import analysis

    def curve(values):
        return [{"step": step, "elbo_bpd": value} for step, value in zip((1750, 2625, 3500), values)]

    noise = [0.0, 0.002, -0.001, 0.001, -0.002]
    steady_gd = [curve([5.40 + e, 5.30 + e, 5.25 + e]) for e in noise]
    vb = [curve([5.45 + e / 2, 5.35 + e / 2, 5.30 + e / 2]) for e in noise]
    assert not analysis.budget_sensitivity(steady_gd, vb)["depends_on_budget"]  # GD 0.05 better all along
    flipping_gd = [curve([5.40 + e, 5.35 + e, 5.33 + e]) for e in noise]  # better early, worse at the end
    result = analysis.budget_sensitivity(flipping_gd, vb)
    assert result["depends_on_budget"] and result["by_step"][3500]["mean_difference_bpd"] > 0


# --- the main phase's answer (studies/gd_vs_vb_16x16/main_analysis.py), on synthetic kept rows ---

def _main_rows(gd_minus_vb, seeds=5, bed="shapes16", worsening_seed=None):
    """Kept rows of both targets of ``bed``: VB's primary bound 5.30 + a per-seed offset, GD's that plus
    ``gd_minus_vb[target]``; the other evaluations shifted copies; KLs 0.060 (GD) and 0.062 (VB)."""
    from studies.gd_vs_vb_16x16 import report

    offsets = [0.0, 0.004, -0.003, 0.002, -0.001, 0.003][:seeds]
    pairs = [("low", 0.5, 0.04), ("high", 0.99, 0.08)]
    plan = report.main_runs(bed, pairs, seeds, baselines=())
    rows = []
    for run in plan:
        target, seed = run["id"].split("-")[2], run["seed"]
        value = 5.30 + offsets[seed] + (gd_minus_vb[target] if run["kind"] == "gaussian_dropout" else 0.0)
        rows.append({"id": run["id"], "bed": bed, "kind": run["kind"], "strength": float(run["strength"]),
                     "seed": seed, "status": "worsening" if seed == worsening_seed else "improving",
                     "noise_marginal_bpd": value, "elbo_bpd": value + 0.01, "iwae_bpd": value - 0.02,
                     "kl_bpd": 0.060 if run["kind"] == "gaussian_dropout" else 0.062})
    return rows, plan


def test_the_main_answer_pairs_by_seed_and_holm_counts_the_unrun_bed_as_p_one():
    from studies.gd_vs_vb_16x16 import analysis, main_analysis

    rows, plan = _main_rows({"low": -0.04, "high": 0.0})
    rows[-1]["noise_marginal_bpd"] += 0.001  # the high target's VB seed 4: a small non-zero spread of differences
    result = main_analysis.answer(rows, plan, curves={})
    low, high = [item for item in result["comparisons"] if item["bed"] == "shapes16"]
    assert low["target"] == "low" and low["seeds"] == [0, 1, 2, 3, 4] and low["complete"]
    assert low["primary"]["mean_difference_bpd"] == pytest.approx(-0.04)
    assert low["secondary"]["elbo_bpd"]["mean_difference_bpd"] == pytest.approx(-0.04)
    # Holm over the fixed family of 4: the two photos16 comparisons enter as p = 1
    p_low, p_high = low["primary"]["t_test_p"], high["primary"]["t_test_p"]
    expected, _ = analysis.holm([p_low, p_high, 1.0, 1.0])
    assert (low["holm_p"], high["holm_p"]) == pytest.approx(expected[:2])
    assert low["rejected"] and low["better"] == "GD" and not high["rejected"]
    assert low["kl"]["matched"] and low["kl"]["relative_difference"] == pytest.approx(0.002 / 0.061)
    assert result["verdicts"] == {"shapes16": "support for the paper", "photos16": None}
    assert "verdict shapes16: support for the paper" in main_analysis.answer_lines(result)


def test_the_main_answer_says_partial_until_every_planned_seed_is_kept_and_drops_worsening_runs_only_beside():
    from studies.gd_vs_vb_16x16 import main_analysis

    rows, plan = _main_rows({"low": -0.04, "high": 0.03}, worsening_seed=2)
    kept = [row for row in rows if row["seed"] != 4]  # seed 4 not run yet
    result = main_analysis.answer(kept, plan, curves={})
    assert result["verdicts"]["shapes16"] == "partial: mixed"
    low = result["comparisons"][0]
    assert low["seeds"] == [0, 1, 2, 3] and not low["complete"]
    assert low["primary_without_worsening"]["seeds"] == [0, 1, 3]  # beside the primary test, not instead of it
    assert low["primary"]["mean_difference_bpd"] == pytest.approx(-0.04)


def test_the_kl_match_uses_15_percent_of_the_arms_mean_kl():
    from studies.gd_vs_vb_16x16 import main_analysis

    def arm(kls):
        return [{"kl_bpd": value} for value in kls]

    assert main_analysis.kl_match(arm([0.057, 0.057]), arm([0.066, 0.066]))["matched"]  # 0.009 / 0.0615 = 14.6%
    assert not main_analysis.kl_match(arm([0.057, 0.057]), arm([0.067, 0.067]))["matched"]  # 16.1%
    assert main_analysis.target_of("m-photos-high-vb0.08-s3") == "high"
    assert main_analysis.target_of("m-shapes-auxiliary_decoder-s0") is None


def test_the_frontier_figure_draws_every_evaluation_from_kept_rows(tmp_path):
    from studies.gd_vs_vb_16x16 import figures

    rows, _ = _main_rows({"low": -0.04, "high": 0.03}, seeds=3)
    rows += [{"id": f"m-shapes-none-s{seed}", "bed": "shapes16", "kind": "none", "strength": 0.0, "seed": seed,
              "status": "plateau", "noise_marginal_bpd": 5.5, "elbo_bpd": 5.5, "iwae_bpd": 5.48, "kl_bpd": 0.001}
             for seed in range(2)]
    records = figures.as_records(rows, "iwae_bpd")
    assert [r["elbo_bpd"] for r in records] == [r["iwae_bpd"] for r in rows]  # the panel's evaluation on the y axis
    assert {r["strength"] for r in records if r["kind"] == "none"} == {None}  # the baseline has no strength
    out = figures.frontier_figure(rows, "shapes16", str(tmp_path / "frontier.png"))
    with open(out, "rb") as stream:
        assert stream.read(8) == b"\x89PNG\r\n\x1a\n"


def test_the_frontier_is_framed_on_the_points_and_says_when_an_interval_runs_off_it():
    from studies.gd_vs_vb_16x16 import figures
    from tuning import frontier

    plt = figures.figures.pyplot()
    # Two seeds: the t-interval's half-width is 12.7 x sd / sqrt(2), far wider than the points' spread.
    records = [{"kind": "variational", "strength": 0.1, "seed": s, "kl_bpd": kl, "elbo_bpd": bound}
               for s, kl, bound in ((0, 0.15, 5.10), (1, 0.24, 5.21))]
    records.append({"kind": "variational", "strength": 0.03, "seed": 0, "kl_bpd": 0.12, "elbo_bpd": 4.93})
    settings = frontier.aggregate(records)
    figure, panel = plt.subplots()
    assert figures._frame_on_points(panel, records, settings)
    low, high = panel.get_ylim()
    assert low < 4.93 and high > 5.21 and high - low < 0.5  # every point inside, the bars' 1.4 bits/dim not
    single = [r for r in records if r["strength"] == 0.03]
    assert not figures._frame_on_points(panel, single, frontier.aggregate(single))  # one seed: no interval
    plt.close(figure)


def test_the_lower_envelope_keeps_the_settings_no_other_beats_on_both_axes():
    from studies.gd_vs_vb_16x16 import figures

    def setting(kl, bound):
        return {"kl_bpd_mean": kl, "elbo_bpd_mean": bound}

    a, b, c, d = setting(0.04, 5.19), setting(0.10, 5.33), setting(0.09, 5.78), setting(0.06, 5.40)
    # c: b has more KL and a lower bound; d: b has more KL and a lower bound too; a has the least KL but the best bound
    assert figures.pareto_envelope([c, b, d, a]) == [a, b]
    assert figures.pareto_envelope([a, dict(a)]) == [a, a]  # ties beat nothing


def test_the_figures_read_back_the_runs_csv_the_report_writes(tmp_path):
    from studies.gd_vs_vb_16x16 import figures, report

    rows, _ = _main_rows({"low": -0.04, "high": 0.03}, seeds=2)
    rows[0]["steps"] = 3500
    rows[0]["cpu"] = "Intel(R) Xeon(R) Platinum 8480C, rev 2"  # a comma inside a field is quoted, not a new column
    report.write_csv(rows, str(tmp_path / "runs.csv"))
    back = figures.read_runs_csv(str(tmp_path / "runs.csv"))
    assert back[:2] == rows[:2]
    assert isinstance(back[0]["seed"], int) and "steps" not in back[1]  # empty cells are left out
    assert figures.read_runs_csv(str(tmp_path / "missing.csv")) == []


def test_progress_counts_kept_runs_per_bed_and_times_per_cpu():
    plan = [{"bed": "shapes16"}] * 3 + [{"bed": "photos16"}] * 2
    rows = [{"bed": "shapes16", "status": "improving", "wall_time_s": 600.0, "cpu": "A"},
            {"bed": "shapes16", "status": "worsening", "wall_time_s": 1200.0, "cpu": "A"},
            {"bed": "shapes16", "status": "diverged"},  # a diverged run has no wall time
            {"bed": "photos16", "status": "plateau", "wall_time_s": 60.0, "cpu": "B, rev 2"}]
    lines = report.progress_lines(rows, plan)
    assert "shapes16: 3 of 3 planned runs kept; plateau readings: diverged 1, improving 1, worsening 1" in lines
    assert "photos16: 1 of 2 planned runs kept; plateau readings: plateau 1" in lines
    assert any(line.startswith("per-run training wall time, A: median 15.0 min over 2 runs") for line in lines)
    assert any(line.startswith("per-run training wall time, B, rev 2: median 1.0 min over 1 runs") for line in lines)


def test_one_worker_holds_a_study_run_from_training_to_keeping(tmp_path, monkeypatch):
    """The runner's lock spans train, evaluate and keep: a second worker neither redoes a run being evaluated nor
    one kept meanwhile; the trainer's own lock stays free for the holder's training."""
    import types

    from gd_bottleneck.errors import RunInUse
    from gd_bottleneck.training.run import exclusive
    from studies.gd_vs_vb_16x16 import study

    model_dir, target = tmp_path / "run", tmp_path / "kept"
    monkeypatch.setattr(study, "kept_folder", lambda phase, run: str(target))
    monkeypatch.setattr(study, "run_config", lambda phase, run, extra: types.SimpleNamespace(model_dir=str(model_dir)))
    held = []
    monkeypatch.setattr(study, "_run_held", lambda config, target, run, write: held.append(run["id"]) or "done")
    with exclusive(str(model_dir), name=".study_lock"):
        assert study.run_one("pilot", {"id": "a"}, print) == "in use" and held == []  # being evaluated elsewhere
        with exclusive(str(model_dir)):  # the trainer's lock is another file: the holder can still train
            pass
        with pytest.raises(RunInUse, match="running this study run"):
            with exclusive(str(model_dir), name=".study_lock", doing="running this study run"):
                pass
    assert study.run_one("pilot", {"id": "a"}, print) == "done" and held == ["a"]
    target.mkdir()
    (target / "study.json").write_text("{}")
    assert study.run_one("pilot", {"id": "b"}, print) == "done" and held == ["a"]  # kept: nothing redone


# --- the review of the 8x8 study (studies/figure2_8x8/review.py) ---

def test_the_review_reads_where_a_curve_bottoms_out_and_whether_it_got_worse():
    from studies.figure2_8x8 import review

    def curve(values):
        return [{"step": 100 * (i + 1), "elbo_bpd": v} for i, v in enumerate(values)]

    still_learning = review.curve_reading(curve([6.0, 5.8, 5.7, 5.65, 5.62, 5.60]))
    # Half of 600 steps is step 300 (value 5.7): 0.10 bits/dim of improvement over the last half, minimum last.
    assert still_learning["min_at_last"] and still_learning["last_half_improvement"] == pytest.approx(0.10)
    worse = review.curve_reading(curve([6.0, 5.5, 5.52, 5.53, 5.54, 5.53]))
    assert worse["min_step"] == 200 and not worse["min_at_last"]
    assert worse["rise_after_min"] == pytest.approx(0.03)  # the plateau rule of the 16x16 study calls this worsening


def test_the_review_sign_test_cannot_go_below_a_quarter_with_three_seeds():
    from studies.figure2_8x8 import review

    assert review.sign_test_p([-0.1, -0.2, -0.3]) == pytest.approx(0.25)  # 2 x (1/2)^3
    assert review.sign_test_p([-0.1, 0.2, -0.3, 0.0]) == pytest.approx(1.0)  # the zero is dropped; 1 of 3 up
    line = review.paired("a - b", [1.0, 2.0, 3.5], [1.1, 2.2, 3.6])
    assert f"paired t p = {stats.ttest_rel([1.0, 2.0, 3.5], [1.1, 2.2, 3.6]).pvalue:.3f}" in line
