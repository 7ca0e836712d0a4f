"""The effective horizon on hand-made accuracies (gam_bench.analysis.horizon)."""

from __future__ import annotations

import pytest
from scipy import stats

from gam_bench.analysis import horizon as hz

BINS = [(0, 2), (2, 4), (4, 8), (8, 16), (16, 30)]
CHANCE = 1 / 32
N = 200


def _horizon(accuracies, trials=N, chance=CHANCE, bins=BINS):
    trials = [trials] * len(accuracies) if isinstance(trials, int) else trials
    correct = [round(a * n) for a, n in zip(accuracies, trials)]
    return hz.effective_horizon(bins, correct, trials, chance)


@pytest.mark.parametrize("k, n", [(0, 10), (10, 10), (3, 10), (57, 200), (1, 1)])
def test_clopper_pearson_is_scipy_s_exact_interval(k, n):
    low, high = hz.clopper_pearson(k, n)
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert low == pytest.approx(ci.low, abs=1e-12) and high == pytest.approx(ci.high, abs=1e-12)
    assert (low == 0.0) == (k == 0) and (high == 1.0) == (k == n)


def test_no_trials_give_the_whole_unit_interval_and_no_evidence():
    assert hz.clopper_pearson(0, 0) == (0.0, 1.0) and hz.p_above_chance(0, 0, 0.5) == 1.0


def test_the_horizon_is_the_farthest_bin_above_chance_and_half_the_best():
    # a model that recalls 4 tokens back and a little further: 5-8 at 0.3 is above chance but
    # below half of the best (1.0), so the horizon is 3-4
    result = _horizon([1.0, 1.0, 0.3, 0.03, 0.03])
    assert [b.above_chance for b in result.bins] == [True, True, True, False, False]
    assert [b.qualifies for b in result.bins] == [True, True, False, False, False]
    assert result.tokens == 4 and result.label == "3–4" and result.best_accuracy == 1.0


def test_no_bin_above_chance_means_no_horizon():
    result = _horizon([0.03, 0.035, 0.03, 0.025, 0.03])
    assert result.horizon is None and result.tokens == 0 and result.label == "none"
    assert not any(b.qualifies for b in result.bins)


def test_a_far_bin_counts_though_a_nearer_one_fails():
    # best at 17-30 (0.5); 9-16 at 0.1 fails the half-of-best rule; the horizon is still 30
    result = _horizon([0.4, 0.4, 0.3, 0.1, 0.5])
    assert [b.qualifies for b in result.bins] == [True, True, True, False, True]
    assert result.tokens == 30 and result.label == "17–30"


def test_ties_for_the_best_bin_and_exactly_half_of_it_qualify():
    result = _horizon([0.8, 0.8, 0.4, 0.39, 0.03])  # two bins tie for the best; 0.4 is exactly half
    assert result.best_accuracy == 0.8
    assert [b.qualifies for b in result.bins] == [True, True, True, False, False]
    assert result.label == "5–8"


def test_bonferroni_over_the_bins_tested():
    # 13/200 against chance 1/32: p ~ 0.015, below 0.05 but above 0.05 / 5
    p = stats.binomtest(13, N, CHANCE, alternative="greater").pvalue
    assert 0.01 < p < 0.05
    five = hz.effective_horizon(BINS, [13, 13, 13, 13, 13], [N] * 5, CHANCE)
    assert five.threshold == pytest.approx(0.01) and not any(b.above_chance for b in five.bins)
    one = hz.effective_horizon(BINS[:1], [13], [N], CHANCE)
    assert one.bins[0].above_chance and one.label == "1–2"
    # a bin without trials is not tested: it neither counts for Bonferroni nor qualifies
    sparse = hz.effective_horizon(BINS[:2], [13, 0], [N, 0], CHANCE)
    assert sparse.threshold == 0.05 and sparse.bins[0].qualifies and not sparse.bins[1].qualifies


def test_bins_in_any_order_and_one_distance_labels():
    result = _horizon([0.03, 1.0], bins=[(4, 8), (0, 2)])
    assert result.horizon.hi == 2 and hz.bin_label(3, 4) == "4" and hz.bin_label(0, 2) == "1–2"


@pytest.mark.parametrize(
    "correct, trials, match",
    [([1, 2], [5], "one count per bin"), ([6], [5], "correct must lie in"), ([-1], [5], "correct must lie in")],
)
def test_inconsistent_counts_are_refused(correct, trials, match):
    with pytest.raises(ValueError, match=match):
        hz.effective_horizon(BINS[: len(correct)], correct, trials, CHANCE)
