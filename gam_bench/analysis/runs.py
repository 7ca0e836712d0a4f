"""Combining several comparisons of the same cells: several recorded runs on either side.

Between-run noise (another tenant on the machine, memory layout, clock) moves a whole run,
which the rank test on one run's repeats cannot see. So a cell fails the gate only if it fails
in *every* baseline-run x candidate-run comparison. No torch here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace

from gam_bench.analysis.verdicts import (
    FAILING_VERDICTS,
    IMPROVEMENT,
    NOT_CONFIRMED,
    UNCHANGED,
    CellComparison,
    Comparison,
)


def runs_label(path: str | os.PathLike[str], runs: int) -> str:
    """How a results path is named in a report: with its number of recorded runs if several."""
    return f"{path} ({runs} runs)" if runs > 1 else str(path)


def confirm(comparisons: Sequence[Comparison], baseline_name: str | None = None) -> Comparison:
    """Combine comparisons of the same cells: several baseline runs and/or candidate runs.

    A cell fails the gate only if it fails in every comparison (failing in some: NOT_CONFIRMED,
    shown, not failing), and is an improvement only if it improves in every one. Numbers are
    those of the last comparison.
    """
    *_, last = comparisons
    if len(comparisons) == 1:
        return last
    verdicts: dict[str, list[str]] = {}
    for comparison in comparisons:
        for cell in comparison.cells:
            verdicts.setdefault(cell.cell_id, []).append(cell.verdict)
    cells = [_confirmed(cell, verdicts[cell.cell_id], len(comparisons)) for cell in last.cells]
    notes = list(dict.fromkeys(note for comparison in comparisons for note in comparison.notes))
    return replace(last, cells=cells, notes=notes, baseline=baseline_name or last.baseline)


def _confirmed(cell: CellComparison, seen: list[str], total: int) -> CellComparison:
    """The last comparison's cell, its verdict kept only if every comparison agrees."""
    failing = sum(verdict in FAILING_VERDICTS for verdict in seen)
    improved = seen.count(IMPROVEMENT)
    detail = f"{cell.verdict} ({cell.note})" if cell.note else cell.verdict
    if failing == total or (improved == total and cell.verdict == IMPROVEMENT):
        return replace(cell, note=f"{cell.note}; in all {total} comparisons".lstrip("; "))
    if failing:
        return replace(cell, verdict=NOT_CONFIRMED, note=f"failing in {failing} of {total} comparisons; last: {detail}")
    if improved:
        return replace(cell, verdict=UNCHANGED, note=f"improvement in {improved} of {total} comparisons only")
    return cell
