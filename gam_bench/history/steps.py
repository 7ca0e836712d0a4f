"""Change points: the commit where a metric stepped to a new level, and by how much.

Two rules, one per kind of metric (`GateMetric.deterministic`):

- **Deterministic** (instruction, FLOP and op counts, live tensor bytes): one run fixes the
  value, so any change between two consecutive commits is real. A step is a change of more
  than `threshold` (a fraction of the earlier value; the metric's gate threshold, 1% for
  instructions) between neighbours.
- **Timed** (time, measured memory): each commit's median carries the machine's noise, which on
  a shared machine moves a whole run's level, so the evidence unit is the commit, not the
  sample. The per-commit medians (log scale: steps are ratios) are split into segments of
  constant level by optimal partitioning with a squared-error cost and a penalty per change
  point of 3·σ²·ln n (the modified BIC, the default of R's `changepoint` package: the plain
  Schwarz 2·σ²·ln n finds spurious short segments among many candidates), solved by PELT
  (`ruptures`, an optional extra). σ is the noise of one commit's median, estimated robustly from the series itself
  (the median absolute deviation of neighbour differences, /√2, which a few steps barely
  move), never below the spread of samples within a commit. A change point is reported only
  if the levels on either side (the median of the segment's commit medians) differ by at least
  `min_step` (10% by default, the gate's time threshold); smaller ones are merged away, the
  smallest first, and the sizes recomputed. With fewer than `MIN_TIMED_COMMITS` commits there
  is no noise estimate and no timed change point.

Why not a rank test between commits: within-commit samples are not independent draws (the
machine sits at one level for seconds), so a test on them flags drift as steps; a test on
commit medians needs several commits on each side and would never see a step at the newest
commit, the one that matters most. asv's `step_detect` is the same idea (a penalised
piecewise-constant fit of per-commit values, with an L1 cost).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gam_bench.errors import UserError

MIN_TIMED_COMMITS = 4  # fewer: no noise estimate, no timed change point
MIN_STEP = 0.10  # timed metrics: the smallest level change reported (fraction)
PENALTY_SCALE = 3.0  # penalty per change point: PENALTY_SCALE * sigma^2 * ln(n)
_MAD_TO_SIGMA = 1.4826  # median absolute deviation -> standard deviation, normal noise
_IQR_TO_SIGMA = 1.349


@dataclass(frozen=True)
class Step:
    """A change of level starting at commit `index` of the series."""

    index: int
    before: float  # the level before (median of the previous segment's commit medians)
    after: float

    @property
    def size(self) -> float:
        """(after - before) / |before|: +0.12 is 12% up (inf when before is 0)."""
        if self.before == 0:
            return math.copysign(math.inf, self.after) if self.after else 0.0
        return (self.after - self.before) / abs(self.before)


def deterministic_steps(values: Sequence[float], threshold: float) -> list[Step]:
    """Every change between neighbours larger than `threshold` of the earlier value."""
    out = []
    for i in range(1, len(values)):
        before, after = float(values[i - 1]), float(values[i])
        if abs(after - before) > threshold * abs(before) or (before == 0 and after != 0):
            out.append(Step(i, before, after))
    return out


def timed_steps(medians: Sequence[float], spread: Sequence[float] = (), min_step: float = MIN_STEP) -> list[Step]:
    """Change points of a noisy series of commit medians (see the module's docstring).

    spread: each commit's relative sample spread (IQR / median), the floor of the noise."""
    values = np.asarray(medians, dtype=float)
    n = len(values)
    if n < MIN_TIMED_COMMITS:
        return []
    signal = np.log(values) if (values > 0).all() else values / max(float(np.median(np.abs(values))), 1e-300)
    sigma = max(_noise(signal), float(np.median(spread)) / _IQR_TO_SIGMA if len(spread) else 0.0, 1e-9)
    ends = _partition(signal, PENALTY_SCALE * sigma**2 * math.log(n))
    while True:
        steps = _levels(values, ends)
        small = [i for i, step in enumerate(steps) if abs(step.size) < min_step]
        if not small:
            return steps
        weakest = min(small, key=lambda i: abs(steps[i].size))
        ends = [end for end in ends if end != steps[weakest].index]


def _noise(signal: np.ndarray) -> float:
    """The noise of one point, from neighbour differences (robust to a few steps)."""
    diffs = np.diff(signal)
    return _MAD_TO_SIGMA * float(np.median(np.abs(diffs - np.median(diffs)))) / math.sqrt(2)


def _partition(signal: np.ndarray, penalty: float) -> list[int]:
    """The segment ends (exclusive, the last is len(signal)) of the penalised L2 fit (PELT)."""
    try:
        import ruptures
    except ImportError:
        raise UserError("gam-bench history: change points need ruptures: pip install 'gam-bench[html]'") from None
    algo = ruptures.Pelt(model="l2", min_size=1, jump=1).fit(signal.reshape(-1, 1))
    return [int(end) for end in algo.predict(pen=penalty)]


def _levels(values: np.ndarray, ends: list[int]) -> list[Step]:
    """A step at each segment start after the first, between the segments' median levels."""
    starts = [0, *ends[:-1]]
    levels = [float(np.median(values[a:b])) for a, b in zip(starts, ends)]
    return [Step(starts[i], levels[i - 1], levels[i]) for i in range(1, len(levels))]
