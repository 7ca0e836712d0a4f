"""Gate settings that can never fire: found before minutes are spent measuring.

The time verdict needs a two-sided Mann-Whitney U test to reach `regression.alpha`. With n
units against m and no ties its smallest possible p-value is 2 / C(n+m, n) (every candidate
unit beyond every baseline unit), so with too few units no data can reach alpha: 2 against
2 gives p >= 0.33, 4 against 4 p >= 0.029, 5 against 5 p >= 0.0079. The judge then falls back
to the effect size alone (analysis/judge.py), which on a noisy machine is a different rule
than the suite's author asked for, so `run` (for a suite with a `regression:` section) and
`check` say so up front, naming the fewest units a side that can reach alpha:

    problems(measure, settings)   # -> ["measure.processes: 2 a side can never reach ..."]

The units are the per-process medians when `measure.processes` >= 2, else the timed samples
of the one process (at least `measure.repeats`; `min_run_time_s` may add more).

The other statistic of the time verdict, the 95% bootstrap interval of the change, needs 3
units a side (with fewer it is not computed); it informs and never decides, so too few units
is reported alongside. Deterministic counts have no test and no such trap; their only trap
is the reverse one, a threshold below the counts' own step-to-step spread, which
`count_spread_note` reports for a compared cell, and which one counted step a cell
(`measure.instruction_steps: 1`) would hide: that is reported up front too. No torch here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

BOOTSTRAP_MIN_UNITS = 3  # analysis.judge.change_ci computes no interval with fewer


def smallest_p(n: int, m: int) -> float:
    """The smallest two-sided exact Mann-Whitney U p-value with n and m untied units."""
    return min(1.0, 2 / math.comb(n + m, n))


def fewest_per_side(alpha: float, limit: int = 1000) -> int:
    """The fewest units a side (n = m) with which the rank test can reach `alpha`."""
    for n in range(1, limit + 1):
        if smallest_p(n, n) <= alpha:
            return n
    return limit


def units(measure: Any) -> tuple[int, str]:
    """(units a side the time verdict judges, the `measure` field that sets them)."""
    if measure.processes >= 2:
        return measure.processes, "processes"
    return measure.repeats, "repeats"


def problems(measure: Any, settings: Any) -> list[str]:
    """Why this `measure` can never give the verdicts `settings` asks for, or never check one (empty: fine)."""
    found = count_problems(measure, settings)
    if not settings.time:
        return found
    n, field = units(measure)
    need = fewest_per_side(settings.alpha)
    if n < need:
        more = " (min_run_time_s may add samples, never processes)" if field == "repeats" else ""
        found.append(
            f"measure.{field}: {n} a side can never reach regression.alpha = {settings.alpha:g} with the "
            f"Mann-Whitney U test (its smallest p is {smallest_p(n, n):.2g}), so time is judged on the "
            f"effect size alone; {need} {field} a side are the fewest that can{more}"
        )
    if n < BOOTSTRAP_MIN_UNITS:
        found.append(
            f"measure.{field}: {n} a side is too few for the 95% bootstrap interval of the time change "
            f"(it needs {BOOTSTRAP_MIN_UNITS}); the report shows none"
        )
    return found


def count_problems(measure: Any, settings: Any) -> list[str]:
    """A counted cell whose step-to-step spread can never be seen (one counted step)."""
    if not getattr(measure, "instructions", False) or measure.instruction_steps >= 2:
        return []
    return [
        f"measure.instruction_steps: 1 counts one step a cell, so the counts' own step-to-step spread "
        f"(noted where it reaches half of regression.instructions_threshold = {settings.instructions_threshold:g}) "
        "is never seen; 2 steps are the fewest that show it"
    ]


def count_spread_note(metric: str, samples: Sequence[Sequence[float]], threshold: float) -> str | None:
    """A note when a count's own step-to-step spread (on either side) reaches half its threshold:
    then the threshold is too tight for the count to be trusted as deterministic."""
    widest = 0.0
    for values in samples:
        values = [float(v) for v in values]
        if len(values) >= 2 and min(values) > 0:
            widest = max(widest, (max(values) - min(values)) / min(values))
    if widest < threshold / 2:
        return None
    return f"{metric} varied {widest:.2%} between the counted steps, half the threshold or more ({threshold:.2%})"
