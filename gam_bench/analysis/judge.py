"""Judging one metric of one cell: pure numbers in, a verdict with its basis out.

- **Time.** A cell is a time regression when both (a) a two-sided Mann-Whitney U test rejects
  "same distribution" at level `alpha`, and (b) the median moved by at least `time_threshold`
  (a fraction of the baseline median). An improvement is the mirror image. When the samples are
  too few for the rank test ever to reach `alpha` (e.g. 4 against 4), the effect size alone
  decides, and the result says so. A 95% bootstrap interval of the relative change is reported
  alongside; it informs the reader and does not change the verdict. The units are the stored
  samples, or the per-process medians where both rows have several (analysis.compare):
  with 5 processes a side the rank test reaches alpha = 0.01 only when every candidate
  process is slower (or faster) than every baseline process.
- **Deterministic counts** (judged first): instructions per step (callgrind), FLOPs and
  dispatched aten ops per step. A count does not move between identical runs, so there is no
  noise to test against: a regression is a growth of at least the metric's own threshold
  (`instructions_threshold` etc., 1% by default), an improvement the mirror image. Each is
  judged only where both rows have it. Which counts a row has is its task's (`Task.gate_metrics`
  of kind "count"; throughput: instructions, flops, dispatched ops); a task's own count (e.g.
  an accuracy, `better: higher`) is judged the same way against its own threshold.
- **Memory.** Peak memory is one number per cell (there are no repeats to test), so the effect
  size alone decides. Counted tensor bytes (`peak_tensor_bytes`, deterministic): a change of
  at least `tensor_bytes_threshold`. A measured peak (`peak_mem_bytes`, noisy RSS): an
  increase of at least `mem_threshold` and of at least `mem_floor_mib` MiB.
- **Status.** A cell that was `ok` in the baseline and is not `ok` in the candidate is a new failure.

No torch here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from gam_bench.analysis.compare_settings import RegressionSettings
from gam_bench.analysis.rows import TENSOR_MEMORY, present
from gam_bench.analysis.verdicts import IMPROVEMENT, REGRESSION, UNCHANGED, MetricResult
from gam_bench.tasks.base import GateMetric

_EPS = 1e-12  # so that exactly +10% counts as 10% despite floating point


@dataclass(frozen=True)
class EffectSizeCheck:
    """Did the metric move by at least `threshold` (fraction of the baseline) and at least
    `floor` (absolute, in the metric's unit), and which way?"""

    threshold: float
    floor: float = 0.0

    def direction(self, baseline: float, candidate: float) -> str:
        """REGRESSION, IMPROVEMENT or UNCHANGED."""
        change = candidate / baseline - 1
        if abs(candidate - baseline) < self.floor:
            return UNCHANGED
        if change >= self.threshold - _EPS:
            return REGRESSION
        if change <= -self.threshold + _EPS:
            return IMPROVEMENT
        return UNCHANGED


@dataclass(frozen=True)
class RankTestCheck:
    """Do two sets of samples differ beyond chance (two-sided Mann-Whitney U at level `alpha`)?"""

    alpha: float

    def usable(self, n: int, m: int) -> bool:
        """Can the test reach `alpha` at all with n and m samples? (Smallest p = 2 / C(n+m, n).)"""
        return n >= 1 and m >= 1 and 2 / math.comb(n + m, n) <= self.alpha

    def p_value(self, baseline: Sequence[float], candidate: Sequence[float]) -> float:
        return float(stats.mannwhitneyu(baseline, candidate, alternative="two-sided").pvalue)


def is_new_failure(baseline_status: str, candidate_status: str) -> bool:
    """Did a cell that ran in the baseline stop producing a measurement in the candidate?"""
    return baseline_status == "ok" and candidate_status != "ok"


def change_ci(baseline: np.ndarray, candidate: np.ndarray) -> tuple[float, float] | None:
    """95% percentile-bootstrap interval of median(candidate) / median(baseline) - 1."""
    if len(baseline) < 3 or len(candidate) < 3:
        return None

    def change(b: np.ndarray, c: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.median(c, axis=axis) / np.median(b, axis=axis) - 1

    res = stats.bootstrap(
        (baseline, candidate),
        change,
        n_resamples=1000,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(0),
    )
    low, high = res.confidence_interval
    return (float(low), float(high))


def judge_time(
    baseline: np.ndarray, candidate: np.ndarray, settings: RegressionSettings, column: str = "time_samples_ms"
) -> MetricResult | None:
    """Time verdict: rank test (when the sample sizes allow) AND minimum effect size. column: what
    the samples are (e.g. "time_samples_ms x control": the candidate's scaled by the control kernel)."""
    if len(baseline) == 0 or len(candidate) == 0:
        return None
    base, cand = float(np.median(baseline)), float(np.median(candidate))
    if base <= 0:
        return None
    direction = EffectSizeCheck(settings.time_threshold).direction(base, cand)
    rank = RankTestCheck(settings.alpha)
    n, m = len(baseline), len(candidate)
    if rank.usable(n, m):
        p_value = rank.p_value(baseline, candidate)
        verdict = direction if p_value < settings.alpha else UNCHANGED
        basis = f"Mann-Whitney U, n={n}/{m}"
    else:
        p_value, verdict = None, direction
        basis = f"effect size only (n={n}/{m}, too few repeats for the rank test)"
    ci = change_ci(baseline, candidate)
    return MetricResult("time", base, cand, cand / base - 1, verdict, basis, p_value, ci, column=column)


def judge_memory(
    baseline: float | None, candidate: float | None, settings: RegressionSettings, column: str = "peak_mem_bytes"
) -> MetricResult | None:
    """Memory verdict: one peak per cell, so the minimum effect size alone decides."""
    if not present(baseline) or not present(candidate) or baseline <= 0:
        return None
    base, cand = float(baseline), float(candidate)
    if column == TENSOR_MEMORY:  # counted, deterministic: its own tight threshold, no floor
        threshold = settings.tensor_bytes_threshold
        verdict = EffectSizeCheck(threshold).direction(base, cand)
        basis = f"deterministic: one count, threshold {threshold:.2%}"
    else:
        verdict = EffectSizeCheck(settings.mem_threshold, settings.mem_floor_mib * 2**20).direction(base, cand)
        basis = "effect size only (1 sample)"
    return MetricResult("memory", base, cand, cand / base - 1, verdict, basis, column=column)


def judge_count(
    metric: str, column: str, baseline: object, candidate: object, threshold: float, better: str = "lower"
) -> MetricResult | None:
    """A count (one value per row): the threshold alone decides (no noise, so no test); None
    unless both sides have a positive value. better: "higher" flips the verdict (an accuracy)."""
    if not present(baseline) or not present(candidate) or float(baseline) <= 0:
        return None
    base, cand = float(baseline), float(candidate)
    verdict = EffectSizeCheck(threshold).direction(base, cand)
    if better == "higher":
        verdict = {REGRESSION: IMPROVEMENT, IMPROVEMENT: REGRESSION}.get(verdict, verdict)
    basis = f"deterministic: one count, threshold {threshold:.2%}"
    return MetricResult(metric, base, cand, cand / base - 1, verdict, basis, column=column)


def judge_counts(
    base: Mapping[str, object], cand: Mapping[str, object], settings: RegressionSettings, metrics: Sequence[GateMetric]
) -> list[MetricResult]:
    """Every count metric of the task (`GateMetric` of kind "count") both rows have, in order.
    A metric's threshold is the settings' field it names (`setting`), else its own."""
    results = []
    for m in metrics:
        threshold = getattr(settings, m.setting) if m.setting else m.threshold
        result = judge_count(m.name, m.column, base.get(m.column), cand.get(m.column), threshold, m.better)
        if result is not None:
            results.append(result)
    return results


def combine(*results: MetricResult | None) -> tuple[str, str]:
    """Regression wins over improvement wins over unchanged; also names the metrics behind it,
    each with its change (e.g. "instructions +3.02%, time +12.5%")."""
    measured = [result for result in results if result is not None]
    for verdict in (REGRESSION, IMPROVEMENT):
        metrics = [f"{result.metric} {result.change * 100:+.2f}%" for result in measured if result.verdict == verdict]
        if metrics:
            return verdict, ", ".join(metrics)
    return UNCHANGED, "" if measured else "nothing measured"
