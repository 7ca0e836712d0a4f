"""A model's effective horizon: how far back its recall reaches, from accuracy per distance bin.

Input: per distance bin (lo, hi] the number of correct answers out of its trials (independent:
one answer per test example, see tasks/recall_distance/layout.py) and the chance accuracy.

- Each bin gets its accuracy, a two-sided 95% Clopper-Pearson interval (exact: beta quantiles)
  and the one-sided exact binomial p-value of "accuracy > chance".
- A bin is **above chance** when its p-value is below ALPHA / (bins tested): Bonferroni over
  the bins, since the horizon is the farthest of several tests and would otherwise pick up a
  lucky far bin.
- A bin **qualifies** when it is above chance and its accuracy is at least half of the
  model's own best bin (>=; ties for the best are fine, the best is one number).
- The **effective horizon** is the farthest qualifying bin (its `hi`); none when no bin
  qualifies. Farther bins need not fail for a nearer one to count, nor nearer ones pass.

A bin with no trials is not tested and never qualifies. No torch, no pandas here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

ALPHA = 0.05
CONFIDENCE = 0.95
HALF_OF_BEST = 0.5


@dataclass(frozen=True)
class BinResult:
    """One distance bin of one trained model."""

    lo: int  # distances in (lo, hi]
    hi: int
    correct: int
    trials: int
    accuracy: float  # correct / trials (nan without trials)
    ci_low: float  # Clopper-Pearson, CONFIDENCE two-sided
    ci_high: float
    p_value: float  # one-sided exact binomial test of accuracy > chance (uncorrected; 1.0 without trials)
    above_chance: bool  # p_value < ALPHA / bins tested
    qualifies: bool  # above chance and accuracy >= HALF_OF_BEST * best

    @property
    def label(self) -> str:
        return bin_label(self.lo, self.hi)


@dataclass(frozen=True)
class Horizon:
    """Every bin's result and the verdict."""

    bins: tuple[BinResult, ...]
    chance: float
    best_accuracy: float  # the model's best bin (nan when no bin has trials)
    threshold: float  # the per-bin significance level after Bonferroni

    @property
    def horizon(self) -> BinResult | None:
        """The farthest qualifying bin, or None."""
        qualifying = [b for b in self.bins if b.qualifies]
        return max(qualifying, key=lambda b: b.hi) if qualifying else None

    @property
    def tokens(self) -> int:
        """The horizon in tokens (its bin's upper edge); 0 when no bin qualifies."""
        return self.horizon.hi if self.horizon is not None else 0

    @property
    def label(self) -> str:
        """The horizon bin as text ("5–8"), or "none"."""
        return self.horizon.label if self.horizon is not None else "none"


def bin_label(lo: int, hi: int) -> str:
    """Distances (lo, hi] as the reader counts them: "5–8" (a one-distance bin: "4")."""
    return str(hi) if hi == lo + 1 else f"{lo + 1}–{hi}"


def clopper_pearson(correct: int, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The exact two-sided interval of a binomial proportion; (0, 1) without trials."""
    if trials == 0:
        return 0.0, 1.0
    ci = stats.binomtest(correct, trials).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def p_above_chance(correct: int, trials: int, chance: float) -> float:
    """One-sided exact binomial p-value of a true accuracy above `chance`; 1.0 without trials."""
    if trials == 0:
        return 1.0
    return float(stats.binomtest(correct, trials, chance, alternative="greater").pvalue)


def effective_horizon(
    edges: list[tuple[int, int]], correct: list[int], trials: list[int], chance: float, alpha: float = ALPHA
) -> Horizon:
    """The bins' results and the horizon of one model (see the module docstring).
    edges: (lo, hi] per bin, in any order; correct, trials: counts per bin, alike."""
    if not (len(edges) == len(correct) == len(trials)):
        raise ValueError(f"one count per bin: {len(edges)} bins, {len(correct)} correct, {len(trials)} trials")
    if any(c < 0 or c > n for c, n in zip(correct, trials)):
        raise ValueError(f"correct must lie in [0, trials] (correct {correct}, trials {trials})")
    tested = sum(1 for n in trials if n > 0)
    threshold = alpha / max(tested, 1)
    accuracies = [c / n if n else math.nan for c, n in zip(correct, trials)]
    best = max((a for a in accuracies if not math.isnan(a)), default=math.nan)
    results = []
    for (lo, hi), c, n, acc in zip(edges, correct, trials, accuracies):
        p = p_above_chance(c, n, chance)
        above = n > 0 and p < threshold
        qualifies = above and acc >= HALF_OF_BEST * best
        results.append(BinResult(lo, hi, c, n, acc, *clopper_pearson(c, n), p, above, qualifies))
    return Horizon(tuple(results), chance, best, threshold)
