"""Scaling exponents and crossover lengths, fitted in log-log space.

A model whose time grows like `c * L**s` has slope `s` in log(time) against log(L):
attention is quadratic (s = 2), GAM and Mamba are linear (s = 1). At short lengths
fixed costs (Python, kernel launches, the feed-forward part) hide the asymptotic term,
so the slope is fitted over the LONGEST lengths only (see `WINDOW_RULE`).

Uncertainty: each throughput cell stores its repeat timings (`time_samples_ms`). The
95% interval is a percentile bootstrap: resample every length's repeats with
replacement, take their median (the statistic that `time_ms` reports), refit, repeat.
It reflects timing noise only, not the choice of window. Peak memory is measured once
per cell, so its slope has no interval.

Pure numpy; no torch, no pandas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_WINDOW = 3
EXTRAPOLATE_MAX = 16  # extrapolated crossovers: at most this many times the longest common length
N_BOOT = 2000
BOOT_SEED = 0
CONFIDENCE = 0.95

WINDOW_RULE = (
    "the longest half of the lengths that ran ok (rounded up), and at least "
    f"{MIN_WINDOW} of them (all of them when fewer ran): fixed per-call costs dominate "
    "short lengths, so the asymptotic exponent shows only at the long end"
)


@dataclass(frozen=True)
class ExponentFit:
    """log(y) = intercept + slope * log(L), fitted over `window` (ascending lengths)."""

    slope: float
    intercept: float
    window: tuple[int, ...]
    ci_low: float = math.nan
    ci_high: float = math.nan
    r2: float = math.nan  # of the log-log fit over the window; low = the window is not a power law

    @property
    def has_ci(self) -> bool:
        return not (math.isnan(self.ci_low) or math.isnan(self.ci_high))

    def predict(self, seq_len: float | np.ndarray) -> float | np.ndarray:
        return np.exp(self.intercept + self.slope * np.log(seq_len))


@dataclass(frozen=True)
class Crossover:
    """Where model `a` and model `b` take the same time.

    kind: "measured" (interpolated between two measured common lengths),
    "extrapolated" (beyond the longest common length, from the two fits, but no further than
    EXTRAPOLATE_MAX times it: a power law fitted over a few lengths says little beyond that)
    or "none".
    faster_beyond: the model that is faster past the crossover (None when kind is "none").
    faster_at_longest: the faster model at the longest length both ran.
    """

    a: str
    b: str
    kind: str
    seq_len: float | None
    faster_beyond: str | None
    faster_at_longest: str
    longest_common: int


def window(seq_lens: Sequence[int]) -> list[int]:
    """The fit window for these (ok) lengths, by `WINDOW_RULE`; ascending."""
    lens = sorted(set(int(x) for x in seq_lens))
    k = min(len(lens), max(MIN_WINDOW, math.ceil(len(lens) / 2)))
    return lens[len(lens) - k :]


def _ols_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slopes of rows of y (..., k) against x (k,)."""
    xc = x - x.mean()
    yc = y - y.mean(axis=-1, keepdims=True)
    return yc @ xc / (xc @ xc)


def _bootstrap_slopes(x: np.ndarray, samples: Sequence[np.ndarray], n_boot: int, seed: int) -> np.ndarray:
    """Slopes of n_boot refits, each on the medians of resampled repeats. -> (n_boot,)"""
    rng = np.random.default_rng(seed)
    medians = np.empty((n_boot, len(samples)))  # (n_boot, k)
    for i, s in enumerate(samples):
        idx = rng.integers(0, len(s), size=(n_boot, len(s)))  # (n_boot, m_i)
        medians[:, i] = np.median(s[idx], axis=1)
    return _ols_slopes(x, np.log(medians))


def fit_exponent(
    seq_lens: Sequence[int],
    values: Sequence[float],
    samples: Sequence[Sequence[float] | None] | None = None,
    *,
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
    confidence: float = CONFIDENCE,
) -> ExponentFit | None:
    """Slope of log(values) against log(seq_lens) over the window of the longest lengths.

    seq_lens/values: the lengths that ran ok and their point values (e.g. median ms).
    samples: per length, the stored repeats; with at least one length holding two or
    more repeats, the fit gets a bootstrap interval. None when fewer than 2 lengths.
    """
    table = {int(n): (float(v), s) for n, v, s in zip(seq_lens, values, samples or [None] * len(values))}
    table = {n: vs for n, vs in table.items() if vs[0] > 0 and math.isfinite(vs[0])}
    lens = window(table)
    if len(lens) < 2:
        return None
    x = np.log(np.array(lens, dtype=float))  # (k,)
    y = np.log(np.array([table[n][0] for n in lens]))  # (k,)
    slope = float(_ols_slopes(x, y))
    intercept = float(y.mean() - slope * x.mean())
    r2 = _r_squared(y, intercept + slope * x)
    reps = [_repeats(table[n][1], table[n][0]) for n in lens]
    if all(len(r) < 2 for r in reps):
        return ExponentFit(slope, intercept, tuple(lens), r2=r2)
    boot = _bootstrap_slopes(x, reps, n_boot, seed)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(boot, [tail, 100 - tail])
    return ExponentFit(slope, intercept, tuple(lens), float(low), float(high), r2)


def _r_squared(y: np.ndarray, fitted: np.ndarray) -> float:
    total = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - fitted) ** 2).sum()) / total if total > 0 else 1.0


def _repeats(samples: Sequence[float] | None, value: float) -> np.ndarray:
    """The positive finite repeats of one length; the point value alone when none are stored."""
    if samples is None:
        return np.array([value])
    arr = np.asarray(samples, dtype=float)
    arr = arr[np.isfinite(arr) & (arr > 0)]
    return arr if arr.size else np.array([value])


def crossover(
    a: str,
    a_points: dict[int, float],
    b: str,
    b_points: dict[int, float],
    a_fit: ExponentFit | None = None,
    b_fit: ExponentFit | None = None,
) -> Crossover | None:
    """Where `a` and `b` (point dicts seq_len -> time) swap order; None if no common length.

    The last sign change of log(a/b) over the common lengths is interpolated linearly
    in log-log. Without one, the two fits are extended past the longest common length.
    """
    common = sorted(set(a_points) & set(b_points))
    if not common:
        return None
    x = np.log(np.array(common, dtype=float))
    d = np.log([a_points[n] for n in common]) - np.log([b_points[n] for n in common])
    at_longest = a if d[-1] < 0 else b
    found = _last_sign_change(x, d)
    if found is not None:
        seq_len, later = found
        beyond = a if later < 0 else b
        return Crossover(a, b, "measured", seq_len, beyond, at_longest, common[-1])
    seq_len = _fits_meet(a_fit, b_fit)
    beyond_range = seq_len is not None and common[-1] < seq_len <= EXTRAPOLATE_MAX * common[-1]
    if beyond_range and _fits_agree(a_fit, b_fit, common[-1], d[-1]):
        beyond = b if at_longest == a else a
        return Crossover(a, b, "extrapolated", seq_len, beyond, at_longest, common[-1])
    return Crossover(a, b, "none", None, None, at_longest, common[-1])


def _last_sign_change(x: np.ndarray, d: np.ndarray) -> tuple[float, float] | None:
    """(length where d crosses 0, d after it) for the last crossing, else None."""
    for j in range(len(d) - 2, -1, -1):
        if d[j] == 0 or d[j] * d[j + 1] < 0:
            if d[j + 1] == 0:
                continue  # touches zero at j+1; the change (if any) shows up one step later
            t = d[j] / (d[j] - d[j + 1])
            return float(np.exp(x[j] + t * (x[j + 1] - x[j]))), float(d[j + 1])
    return None


def _fits_meet(a_fit: ExponentFit | None, b_fit: ExponentFit | None) -> float | None:
    if a_fit is None or b_fit is None or a_fit.slope == b_fit.slope:
        return None
    x = (b_fit.intercept - a_fit.intercept) / (a_fit.slope - b_fit.slope)
    return float(np.exp(x)) if x < 700 else None


def _fits_agree(a_fit: ExponentFit, b_fit: ExponentFit, seq_len: int, measured: float) -> bool:
    """Do the fits order a and b at `seq_len` as the measurement `measured` = log(a/b) does?"""
    fitted = math.log(a_fit.predict(seq_len)) - math.log(b_fit.predict(seq_len))
    return fitted * measured > 0
