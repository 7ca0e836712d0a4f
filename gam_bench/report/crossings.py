"""Is a measured crossover a finding or noise? Judged from the curves' stored intervals.

Two curves' medians can swap order where their spreads overlap (mamba and mamba-paper, the
same computation, swap back and forth by chance). A measured crossover counts as a finding
("separated") only when the two curves' time intervals (the stored interquartile range of the
repeats, pooled over seeds) are disjoint at some common length on each side of it: below it
in the order the curves had before the crossing, above it in the order after. Otherwise it is
"within noise": listed in the crossover table, never drawn on a figure.

The time figure marks the separated crossovers with a letter above the axes (A, B, ...) and a
legend entry; the crossover table gives the same letters.

A length without an interval (a single repeat, or rows from before the quartiles were
stored) cannot show a separation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gam_bench.analysis import Crossover
from gam_bench.report.curves import Group, Series

WITHIN_NOISE = "within noise"
# With more curves than this (the O(N) field's suite draws 12), only crossovers with GAM, the
# benchmark's subject, are drawn: every pair's would bury the plot. The table lists them all.
CROSSOVER_LINES_MAX_SERIES = 5


@dataclass(frozen=True)
class Interval:
    low: float
    median: float
    high: float

    @property
    def known(self) -> bool:
        return all(math.isfinite(v) for v in (self.low, self.median, self.high))


def intervals(series: Series) -> dict[int, Interval]:
    """seq_len -> the time interval (q25, median, q75) of a series' ok points."""
    ok = series.ok
    return {
        int(n): Interval(float(lo), float(med), float(hi))
        for n, lo, med, hi in zip(ok["seq_len"], ok["time_q25"], ok["time_ms"], ok["time_q75"])
    }


def disjoint(a: Interval, b: Interval) -> bool:
    """Do two known intervals not overlap?"""
    return a.known and b.known and (a.high < b.low or b.high < a.low)


def sample_intervals(points, length: str, median: str, samples: str) -> dict[int, Interval]:
    """length -> (q25, median, q75) of each point's stored repeats (a list column); no repeats:
    an unknown interval."""
    out = {}
    for n, med, values in zip(points[length], points[median], points[samples]):
        values = np.asarray(values if values is not None else [], dtype=float)
        q25, q75 = np.percentile(values, [25, 75]) if len(values) > 1 else (np.nan, np.nan)
        out[int(n)] = Interval(float(q25), float(med), float(q75))
    return out


def separated(c: Crossover, a: Series, b: Series) -> bool:
    """Is the measured crossover `c` of series `a` and `b` outside the noise on both sides?"""
    return separated_intervals(c, intervals(a), intervals(b))


def separated_intervals(c: Crossover, ia: dict[int, Interval], ib: dict[int, Interval]) -> bool:
    """`separated`, from each curve's intervals by length (a's and b's, as in `c`)."""
    if c.kind != "measured" or c.seq_len is None:
        return False
    common = sorted(set(ia) & set(ib))
    below = [n for n in common if n < c.seq_len]
    above = [n for n in common if n > c.seq_len]
    if not below or not above:
        return False
    a_faster_after = c.faster_beyond == c.a
    # Below: walk down from the crossing while the medians keep the order they had before it.
    before_ok = False
    for n in reversed(below):
        if (ia[n].median < ib[n].median) == a_faster_after:
            break  # an earlier swap: what lies below belongs to another crossing
        before_ok = before_ok or disjoint(ia[n], ib[n])
    after_ok = any(disjoint(ia[n], ib[n]) for n in above)
    return before_ok and after_ok


def judged(group: Group) -> dict[tuple[str, str], bool]:
    """(a, b) -> separated, for each measured crossover of the group."""
    by_label = {s.label: s for s in group.series}
    return {
        (c.a, c.b): separated(c, by_label[c.a], by_label[c.b])
        for c in group.crossovers
        if c.kind == "measured" and c.a in by_label and c.b in by_label
    }


def basis(c: Crossover, noise: dict[tuple[str, str], bool] | None) -> str:
    """The crossover table's basis: "measured", "within noise", "extrapolated" or "none"."""
    if c.kind == "measured" and noise is not None and not noise.get((c.a, c.b), False):
        return WITHIN_NOISE
    return c.kind


def drawn(group: Group) -> list[Crossover]:
    """The crossovers the time figure marks: measured and separated (all such, or GAM's when
    there are many curves)."""
    noise = judged(group)
    found = [c for c in group.crossovers if noise.get((c.a, c.b), False)]
    if len(group.series) <= CROSSOVER_LINES_MAX_SERIES:
        return found
    return [c for c in found if "gam" in (c.a, c.b)]


def letters(group: Group) -> dict[tuple[str, str], str]:
    """(a, b) -> the letter that marks a drawn crossover on the figure and in the table."""
    marks = sorted(drawn(group), key=lambda c: (c.seq_len, c.a, c.b))
    return {(c.a, c.b): _letter(i) for i, c in enumerate(marks)}


def _letter(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"Z{i - 25}"
