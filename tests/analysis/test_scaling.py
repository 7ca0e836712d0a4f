"""Scaling exponents and crossovers on synthetic data with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gam_bench.analysis import WINDOW_RULE, crossover, fit_exponent, window

LENGTHS = [2**k for k in range(8, 15)]  # 256 .. 16384


def noisy_power_law(slope: float, seed: int, *, repeats: int = 15, sigma: float = 0.05, overhead: float = 0.0):
    """Per length: `repeats` timings of 1e-3 * L**slope (+ a fixed overhead), lognormal noise."""
    rng = np.random.default_rng(seed)
    samples = [(1e-3 * n**slope + overhead) * np.exp(rng.normal(0.0, sigma, repeats)) for n in LENGTHS]
    medians = [float(np.median(s)) for s in samples]
    return medians, samples


@pytest.mark.parametrize("true_slope", [1.0, 2.0])
def test_fit_recovers_known_slope_and_ci_covers_it(true_slope):
    medians, samples = noisy_power_law(true_slope, seed=1)
    fit = fit_exponent(LENGTHS, medians, samples)
    assert abs(fit.slope - true_slope) < 0.05
    assert fit.has_ci
    assert fit.ci_low <= true_slope <= fit.ci_high
    assert fit.ci_low <= fit.slope <= fit.ci_high
    assert fit.ci_high - fit.ci_low < 0.2  # an interval that says something


@pytest.mark.parametrize("true_slope", [1.0, 2.0])
def test_ci_coverage_over_many_datasets(true_slope):
    """A 95% interval should cover the truth in most of 40 independent noisy datasets."""
    covered = 0
    for seed in range(40):
        medians, samples = noisy_power_law(true_slope, seed=100 + seed)
        fit = fit_exponent(LENGTHS, medians, samples, n_boot=500)
        covered += fit.ci_low <= true_slope <= fit.ci_high
    assert covered >= 33


def test_window_is_the_longest_half_with_a_floor_of_three():
    assert window(LENGTHS) == LENGTHS[-4:]  # 7 lengths -> ceil(7/2) = 4
    assert window(LENGTHS[:4]) == LENGTHS[1:4]  # 4 lengths -> 2, raised to 3
    assert window(LENGTHS[:2]) == LENGTHS[:2]  # fewer than 3: all of them
    assert window([4096, 256, 1024, 512]) == [512, 1024, 4096]  # sorted
    assert "longest" in WINDOW_RULE


def test_window_ignores_short_length_overhead():
    """A fixed overhead bends the short end; the window keeps the slope near the truth."""
    medians, samples = noisy_power_law(2.0, seed=3, overhead=200.0)  # overhead ~ value at L=450
    fit = fit_exponent(LENGTHS, medians, samples)
    full = np.polyfit(np.log(LENGTHS), np.log(medians), 1)[0]
    assert abs(fit.slope - 2.0) < abs(full - 2.0)
    assert fit.window == tuple(LENGTHS[-4:])


def test_fit_is_deterministic():
    medians, samples = noisy_power_law(1.0, seed=5)
    assert fit_exponent(LENGTHS, medians, samples) == fit_exponent(LENGTHS, medians, samples)


def test_no_repeats_means_no_ci():
    values = [3.0 * n**1.5 for n in LENGTHS]
    fit = fit_exponent(LENGTHS, values)  # e.g. peak memory: one value per cell
    assert fit.slope == pytest.approx(1.5)
    assert not fit.has_ci and math.isnan(fit.ci_low)
    assert fit.predict(LENGTHS[-1]) == pytest.approx(values[-1])
    assert fit.r2 == pytest.approx(1.0)


def test_r_squared_flags_a_window_that_is_not_a_power_law():
    bumpy = [1.0, 2.0, 0.7, 3.0, 1.2, 4.0, 1.1]  # up and down by length
    assert fit_exponent(LENGTHS, bumpy).r2 < 0.5


def test_too_few_lengths_gives_no_fit():
    assert fit_exponent([1024], [5.0], [[5.0, 5.1]]) is None
    assert fit_exponent([], []) is None
    assert fit_exponent([256, 512], [0.0, float("nan")]) is None  # unusable values dropped


def test_measured_crossover_is_interpolated_in_log_log():
    # a = L (linear), b = L**2 / 1000: equal at L = 1000, b faster below, a faster above.
    a = {n: float(n) for n in LENGTHS}
    b = {n: n**2 / 1000 for n in LENGTHS}
    c = crossover("gam", a, "transformer-naive", b)
    assert c.kind == "measured"
    assert c.seq_len == pytest.approx(1000.0)
    assert c.faster_beyond == "gam" and c.faster_at_longest == "gam"
    assert c.longest_common == LENGTHS[-1]


def test_crossover_uses_only_common_lengths():
    a = {n: float(n) for n in LENGTHS}
    b = {n: n**2 / 1000 for n in LENGTHS[:3]}  # b failed (OOM) beyond 1024
    c = crossover("gam", a, "transformer-naive", b)
    assert c.longest_common == 1024
    assert c.seq_len == pytest.approx(1000.0)


def test_crossover_extrapolated_from_fits_beyond_measured_range():
    a_vals = [50.0 * n for n in LENGTHS]  # slower at every measured length, but linear
    b_vals = [n**2 / 1000 for n in LENGTHS]  # equal at L = 50,000
    a_fit, b_fit = fit_exponent(LENGTHS, a_vals), fit_exponent(LENGTHS, b_vals)
    c = crossover("gam", dict(zip(LENGTHS, a_vals)), "transformer", dict(zip(LENGTHS, b_vals)), a_fit, b_fit)
    assert c.kind == "extrapolated"
    assert c.seq_len == pytest.approx(50_000.0, rel=1e-6)
    assert c.faster_at_longest == "transformer" and c.faster_beyond == "gam"


def test_no_crossover_when_order_never_changes():
    a = {n: float(n) for n in LENGTHS}
    b = {n: 2.0 * n**2 for n in LENGTHS}
    fits = fit_exponent(LENGTHS, list(a.values())), fit_exponent(LENGTHS, list(b.values()))
    c = crossover("gam", a, "transformer-naive", b, *fits)
    assert c.kind == "none" and c.seq_len is None and c.faster_at_longest == "gam"
    assert crossover("gam", a, "mamba", {}) is None


def test_extrapolation_stops_at_a_bounded_distance():
    """Nearly parallel fits meet absurdly far away: no crossover is claimed."""
    a_vals = [2.0 * n**1.00 for n in LENGTHS]
    b_vals = [1.0 * n**1.02 for n in LENGTHS]  # would meet near L = 2**50
    a_fit, b_fit = fit_exponent(LENGTHS, a_vals), fit_exponent(LENGTHS, b_vals)
    c = crossover("gam", dict(zip(LENGTHS, a_vals)), "mamba", dict(zip(LENGTHS, b_vals)), a_fit, b_fit)
    assert c.kind == "none" and c.faster_at_longest == "mamba"
