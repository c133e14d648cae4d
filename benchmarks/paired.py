"""Timing two sides against each other on a noisy machine: interleaved blocks and a ratio with its interval.

A slow minute of a shared machine falls on one side only when the sides are timed one after the other, so the
comparison benchmarks alternate them in short blocks inside one process (:func:`interleaved_seconds`: pair ``i``
runs A then B when ``i`` is even and B then A when it is odd, so that a steady drift cancels) and summarise the
per-pair ratios by their median with a distribution-free interval (:func:`ratio_summary`): the k-th smallest and
k-th largest of n ratios bracket the true median ratio with probability ``1 - 2 P(Binomial(n, 1/2) < k)``, whatever
the distribution of the timings, as long as pairs are independent and each pair's ratio is as likely to fall on
either side of the median. With 9 pairs the 95% interval is the 2nd to the 8th ratio (coverage 96.1%), so one
planted slow block moves neither the median nor the interval's ends.
"""

import statistics
import time

from scipy import stats

MIN_PAIRS = 6  # fewer pairs cannot give a 95% distribution-free interval for a median (5 pairs: 93.75% at best)


def interleaved_seconds(first, second, pairs, warmup=1):
    """Runs the zero-argument callables ``first`` and ``second`` (each one block of work that has finished when it
    returns) ``warmup`` times each untimed, then ``pairs`` times each, alternating ABBA...; returns two lists of
    ``pairs`` wall-clock seconds, pair-aligned."""
    if pairs < MIN_PAIRS:
        raise ValueError(f"pairs must be >= {MIN_PAIRS} for a 95% interval of the median ratio. Received: {pairs}")
    for _ in range(warmup):
        first()
        second()
    timings = ([], [])
    for pair in range(pairs):
        order = (0, 1) if pair % 2 == 0 else (1, 0)
        for side in order:
            start = time.perf_counter()
            (first, second)[side]()
            timings[side].append(time.perf_counter() - start)
    return timings


def median_interval_ranks(n, confidence=0.95):
    """``(k, coverage)``: the largest k such that the k-th smallest and the k-th largest of n independent draws
    bracket their median with probability ``coverage >= confidence``."""
    if n < MIN_PAIRS:
        raise ValueError(f"n must be >= {MIN_PAIRS} for a {confidence:.0%} interval of a median. Received: {n}")
    k = 1
    while k < n // 2 and 1 - 2 * stats.binom.cdf(k, n, 0.5) >= confidence:  # cdf(k) = P(X < k + 1)
        k += 1
    return k, 1 - 2 * stats.binom.cdf(k - 1, n, 0.5)


def ratio_summary(numerator_seconds, denominator_seconds, confidence=0.95):
    """The per-pair ratios ``numerator / denominator`` (e.g. reference seconds over ours: a speed-up) summarised:
    ``ratio`` (median), ``ratio_low`` and ``ratio_high`` (the distribution-free interval of the median, exact
    coverage ``ratio_coverage``), ``pairs``, and each side's median seconds."""
    if len(numerator_seconds) != len(denominator_seconds):
        raise ValueError(f"the two sides must have the same number of timings (one per pair). Received: "
                         f"{len(numerator_seconds)} and {len(denominator_seconds)}")
    if min(list(numerator_seconds) + list(denominator_seconds)) <= 0:
        raise ValueError("timings must be positive seconds")
    ratios = sorted(a / b for a, b in zip(numerator_seconds, denominator_seconds))
    k, coverage = median_interval_ranks(len(ratios), confidence)
    return {"ratio": statistics.median(ratios), "ratio_low": ratios[k - 1], "ratio_high": ratios[-k],
            "ratio_coverage": round(coverage, 4), "pairs": len(ratios),
            "numerator_median_s": statistics.median(numerator_seconds),
            "denominator_median_s": statistics.median(denominator_seconds)}


def goal_status(summary, goal):
    """``"met"`` only when the interval's low end clears ``goal``; ``"missed"`` when its high end stays below it;
    else ``"undecided"`` (the interval straddles the goal)."""
    if summary["ratio_low"] >= goal:
        return "met"
    return "missed" if summary["ratio_high"] < goal else "undecided"
