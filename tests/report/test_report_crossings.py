"""A measured crossover is drawn only where the curves' intervals separate on both sides."""

from __future__ import annotations

import pandas as pd

from gam_bench.analysis import crossover
from gam_bench.report import crossings
from gam_bench.report.curves import Series


def series(label: str, points: dict[int, tuple[float, float, float]]) -> Series:
    """points: seq_len -> (q25, median, q75) of the time."""
    rows = [
        {"seq_len": n, "status": "ok", "time_q25": lo, "time_ms": med, "time_q75": hi}
        for n, (lo, med, hi) in sorted(points.items())
    ]
    return Series(label, label, pd.DataFrame(rows))


def judge(a: Series, b: Series) -> tuple[str, bool]:
    medians = lambda s: dict(zip(s.points["seq_len"], s.points["time_ms"]))  # noqa: E731
    found = crossover(a.label, medians(a), b.label, medians(b))
    return found.kind, crossings.separated(found, a, b)


def test_disjoint_on_both_sides_is_separated():
    a = series("a", {1: (0.9, 1.0, 1.1), 2: (1.9, 2.0, 2.1), 4: (3.9, 4.0, 4.1)})
    b = series("b", {1: (1.9, 2.0, 2.1), 2: (1.95, 2.05, 2.15), 4: (2.4, 2.5, 2.6)})
    assert judge(a, b) == ("measured", True)


def test_overlap_on_one_side_is_within_noise():
    a = series("a", {1: (0.9, 1.0, 1.1), 2: (1.9, 2.0, 2.1), 4: (3.9, 4.0, 4.1)})
    b = series("b", {1: (1.9, 2.0, 2.1), 2: (1.95, 2.05, 2.15), 4: (3.5, 3.95, 4.05)})  # overlaps a at 4
    assert judge(a, b) == ("measured", False)
    c = crossover("a", {1: 1.0, 2: 2.0, 4: 4.0}, "b", {1: 2.0, 2: 2.05, 4: 3.95})
    assert crossings.basis(c, {("a", "b"): False}) == crossings.WITHIN_NOISE
    assert crossings.basis(c, None) == "measured"  # not judged: as computed


def test_medians_that_swap_inside_their_spread_are_within_noise():
    """Two runs of one computation (mamba vs mamba-paper): wide, overlapping IQRs everywhere."""
    a = series("a", {1: (0.8, 1.0, 1.3), 2: (1.7, 2.1, 2.4), 4: (3.5, 3.9, 4.4)})
    b = series("b", {1: (0.8, 1.05, 1.3), 2: (1.7, 2.0, 2.4), 4: (3.5, 4.0, 4.4)})
    assert judge(a, b) == ("measured", False)


def test_separation_below_an_earlier_swap_does_not_count():
    """Below the crossing, only lengths in the order the curves had just before it count."""
    a = series("a", {1: (0.5, 0.6, 0.7), 2: (1.9, 2.0, 2.1), 4: (3.9, 4.0, 4.1)})
    b = series("b", {1: (1.9, 2.0, 2.1), 2: (1.95, 2.02, 2.15), 4: (2.4, 2.5, 2.6)})
    assert judge(a, b) == ("measured", True)  # a faster at 1 and 2 (disjoint at 1), slower at 4
    swapped = series("a", {1: (2.9, 3.0, 3.1), 2: (1.9, 2.0, 2.1), 4: (3.9, 4.0, 4.1)})
    assert judge(swapped, b) == ("measured", False)  # at 1 a was slower: another crossing


def test_without_intervals_nothing_separates():
    nan = float("nan")
    a = series("a", {1: (nan, 1.0, nan), 2: (nan, 2.0, nan), 4: (nan, 4.0, nan)})
    b = series("b", {1: (nan, 2.0, nan), 2: (nan, 2.05, nan), 4: (nan, 2.5, nan)})
    assert judge(a, b) == ("measured", False)
