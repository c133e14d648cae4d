"""The comparison benchmarks' statistics (benchmarks/paired.py) on synthetic timings whose answer is known."""

import numpy as np
import pytest
from scipy import stats

from benchmarks import paired


def test_interval_ranks_and_coverage_match_the_binomial():
    # 9 pairs: the 2nd and 8th of 9 bracket the median with probability 1 - 2 * 10 / 512
    assert paired.median_interval_ranks(9) == (2, pytest.approx(1 - 20 / 512))
    assert paired.median_interval_ranks(6) == (1, pytest.approx(1 - 2 / 64))
    for n in range(6, 40):
        k, coverage = paired.median_interval_ranks(n)
        assert coverage >= 0.95
        assert 1 - 2 * stats.binom.cdf(k, n, 0.5) < 0.95 or k == n // 2  # the next rank in would not be 95%


def test_a_planted_slow_block_moves_neither_the_median_nor_the_interval():
    rng = np.random.default_rng(0)
    ours = 1.0 * np.exp(rng.normal(0, 0.05, 9))
    reference = 1.5 * np.exp(rng.normal(0, 0.05, 9))  # true speed-up 1.5
    clean = paired.ratio_summary(reference, ours)
    slowed = reference.copy()
    slowed[4] *= 3.0  # a slow minute of the machine during one reference block
    planted = paired.ratio_summary(slowed, ours)
    assert clean["ratio_low"] <= 1.5 <= clean["ratio_high"]
    assert planted["ratio_low"] <= 1.5 <= planted["ratio_high"]
    assert planted["ratio"] == pytest.approx(clean["ratio"], rel=0.1)
    assert (planted["ratio_low"], planted["ratio_high"]) == pytest.approx((clean["ratio_low"], clean["ratio_high"]),
                                                                          rel=0.1)
    # a mean of the timings, what one-after-the-other timing of long runs gives, is pulled far off
    assert np.mean(slowed) / np.mean(ours) > 1.7


def test_the_interval_covers_the_true_ratio_at_least_as_often_as_it_says():
    rng = np.random.default_rng(1)
    true_ratio, covered, trials = 2.0, 0, 2000
    for _ in range(trials):
        noise = rng.standard_t(3, (2, 9)) * 0.1  # heavy tails: every block is noisy, some very
        ours, reference = np.exp(noise[0]), true_ratio * np.exp(noise[1])
        summary = paired.ratio_summary(reference, ours)
        covered += summary["ratio_low"] <= true_ratio <= summary["ratio_high"]
    assert covered / trials >= summary["ratio_coverage"] - 3 * np.sqrt(0.04 * 0.96 / trials)


def test_goal_status_needs_the_low_end_to_clear_the_goal():
    summary = {"ratio": 1.6, "ratio_low": 1.4, "ratio_high": 1.8}
    assert paired.goal_status(summary, 1.5) == "undecided"
    assert paired.goal_status({**summary, "ratio_low": 1.5}, 1.5) == "met"
    assert paired.goal_status({**summary, "ratio_high": 1.45}, 1.5) == "missed"


def test_interleaving_alternates_the_order_and_times_each_block():
    calls = []
    first, second = (lambda: calls.append("A")), (lambda: calls.append("B"))
    a, b = paired.interleaved_seconds(first, second, pairs=6, warmup=1)
    assert "".join(calls) == "AB" + "AB" "BA" "AB" "BA" "AB" "BA"
    assert len(a) == len(b) == 6 and min(a + b) >= 0


@pytest.mark.parametrize("call, message", [
    (lambda: paired.ratio_summary([1.0] * 5, [1.0] * 5), "n must be >= 6"),
    (lambda: paired.ratio_summary([1.0] * 6, [1.0] * 7), "same number of timings"),
    (lambda: paired.ratio_summary([1.0] * 5 + [0.0], [1.0] * 6), "positive"),
    (lambda: paired.interleaved_seconds(lambda: None, lambda: None, pairs=5), "pairs must be >= 6"),
])
def test_bad_input_is_refused_with_its_name(call, message):
    with pytest.raises(ValueError, match=message):
        call()
