"""Render a `Comparison`: a rich table for the terminal, Markdown for a pull-request comment.

Both show the same facts per cell: verdict (naming the metrics that failed, each with its
change), the deterministic counts' changes (instructions, FLOPs, dispatched ops), median time
baseline -> candidate with the relative change, its 95% bootstrap interval and the rank
test's p-value, and peak memory with its change.
No torch here.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from gam_bench.analysis.verdicts import (
    FIXED,
    IMPROVEMENT,
    NEW_FAILURE,
    NOT_CONFIRMED,
    ONLY_BASELINE,
    ONLY_CANDIDATE,
    REGRESSION,
    STILL_FAILING,
    UNCHANGED,
    CellComparison,
    Comparison,
    MetricResult,
)

# Most severe first: the order of the Markdown "changes" table and the summary line.
SEVERITY = (
    NEW_FAILURE,
    REGRESSION,
    NOT_CONFIRMED,
    ONLY_BASELINE,
    ONLY_CANDIDATE,
    IMPROVEMENT,
    FIXED,
    STILL_FAILING,
    UNCHANGED,
)
_STYLE = {
    NEW_FAILURE: "bold red",
    REGRESSION: "bold red",
    IMPROVEMENT: "green",
    FIXED: "green",
    NOT_CONFIRMED: "yellow",
    ONLY_BASELINE: "yellow",
    ONLY_CANDIDATE: "yellow",
    STILL_FAILING: "dim",
    UNCHANGED: "",
}
_ICON = {
    NEW_FAILURE: ":x:",
    REGRESSION: ":x:",
    IMPROVEMENT: ":rocket:",
    FIXED: ":white_check_mark:",
    NOT_CONFIRMED: ":warning:",
    ONLY_BASELINE: ":warning:",
    ONLY_CANDIDATE: ":warning:",
    STILL_FAILING: ":grey_question:",
    UNCHANGED: "",
}
_HEADERS = ("Cell", "Verdict", "Counts (change)", "Time (median)", "Change [95% CI]", "p", "Peak memory", "Change")
_SHORT = {"instructions": "instr"}
_BUILT_IN = ("instructions", "flops", "ops")  # the throughput counts the method line names with their settings


# --------------------------------------------------------------------------------------------
# Shared cell formatting.


def _ms(value: float) -> str:
    return f"{value:.3g} ms" if value < 100 else f"{value:,.0f} ms"


def _bytes(value: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"


def _pct(value: float) -> str:
    return f"{value * 100:+.1f}%"


def _values(result: MetricResult | None, fmt) -> str:
    return f"{fmt(result.baseline)} → {fmt(result.candidate)}" if result else "–"


def _change(result: MetricResult | None) -> str:
    if result is None:
        return "–"
    text = _pct(result.change)
    return f"{text} [{_pct(result.ci[0])}, {_pct(result.ci[1])}]" if result.ci else text


def _p_value(result: MetricResult | None) -> str:
    return f"{result.p_value:.2g}" if result and result.p_value is not None else "–"


def _counts(cell: CellComparison) -> str:
    """E.g. "instr 36.1M → 37.2M +3.02% !, ops +0.00%" ("!": that count regressed)."""
    parts = []
    for result in cell.counts:
        name = _SHORT.get(result.metric, result.metric)
        values = f"{_count(result.baseline)} → {_count(result.candidate)} " if result.metric == "instructions" else ""
        flag = " !" if result.verdict == REGRESSION else ""
        parts.append(f"{name} {values}{result.change * 100:+.2f}%{flag}")
    return ", ".join(parts) or "–"


def _count(value: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.4g}{unit}"
    return f"{value:.0f}"


def _verdict(cell: CellComparison) -> str:
    return f"{cell.verdict} ({cell.note})" if cell.note else cell.verdict


def cell_fields(cell: CellComparison) -> tuple[str, ...]:
    """The row of one cell, in `_HEADERS` order, as plain text."""
    return (
        cell.label,
        _verdict(cell),
        _counts(cell),
        _values(cell.time, _ms),
        _change(cell.time),
        _p_value(cell.time),
        _values(cell.memory, _bytes),
        _change(cell.memory),
    )


def summary_line(comparison: Comparison) -> str:
    """E.g. `FAIL: 12 cells: 1 new failure, 2 regression, 9 unchanged`."""
    counts = comparison.counts()
    parts = [f"{counts[v]} {v}" for v in SEVERITY if counts.get(v)]
    head = "FAIL" if comparison.failed else "PASS"
    return f"{head}: {len(comparison.cells)} cells: {', '.join(parts)}"


def method_line(comparison: Comparison) -> str:
    """The rule applied, where its thresholds came from, and which memory column was judged."""
    s = comparison.settings
    columns = " and ".join(comparison.memory_columns()) or "none"
    timed = sum(1 for cell in comparison.cells if cell.time is not None)
    controlled = comparison.controlled_cells()
    notes = [f"relative to the control kernel in {controlled} of {timed} cells"] if controlled else []
    processes = comparison.per_process_cells()
    if processes:
        notes.append(f"per-process medians as the units in {processes} of {timed} cells")
    relative = f" ({'; '.join(notes)})" if notes else ""
    counted = len(comparison.cells)
    deterministic = (
        f"deterministic first, no test: instructions (in {comparison.counted_cells('instructions')} of {counted} "
        f"cells) >= {s.instructions_threshold:.2%}, flops >= {s.flops_threshold:.2%}, dispatched ops >= "
        f"{s.ops_threshold:.2%}, tensor bytes >= {s.tensor_bytes_threshold:.2%}"
    )
    time = (
        f"time{relative}: regression if the median moves >= {s.time_threshold:.0%} and a Mann-Whitney U test "
        f"gives p < {s.alpha:g}"
        if s.time
        else "time: not judged (regression: time: false)"
    )
    deterministic += "".join(
        f"; {r.metric} ({r.column}) >= {r.basis.rsplit('threshold ', 1)[-1]}"
        for r in {r.metric: r for c in comparison.cells for r in c.counts if r.metric not in _BUILT_IN}.values()
    )
    return (
        f"{deterministic}; {time}; memory ({columns}): one peak per cell, measured peaks regress if "
        f">= {s.mem_threshold:.0%} and >= {s.mem_floor_mib:g} MiB higher; thresholds: {comparison.settings_source}"
    )


# --------------------------------------------------------------------------------------------
# Terminal.


def _console() -> Console:
    """A terminal console; in a CI log (not a terminal) a wide one, so rows are not folded."""
    console = Console()
    return console if console.is_terminal else Console(width=max(console.width, 160))


def render_terminal(comparison: Comparison, console: Console | None = None) -> None:
    """Print the comparison as a rich table with a summary line and notes."""
    console = console or _console()
    table = Table(title=f"{comparison.baseline} → {comparison.candidate}", show_lines=False)
    for header in _HEADERS:
        table.add_column(header, overflow="fold")
    for cell in comparison.cells:
        table.add_row(*cell_fields(cell), style=_STYLE.get(cell.verdict, ""))
    console.print(table)
    console.print(method_line(comparison), style="dim")
    for note in comparison.notes:
        console.print(f"note: {note}", style="yellow")
    console.print(summary_line(comparison), style="bold red" if comparison.failed else "bold green")


# --------------------------------------------------------------------------------------------
# Markdown.


def _md_row(fields: tuple[str, ...]) -> str:
    return "| " + " | ".join(field.replace("|", "\\|") for field in fields) + " |"


def _md_table(cells: list[CellComparison]) -> list[str]:
    lines = [_md_row(_HEADERS), _md_row(tuple("---" for _ in _HEADERS))]
    for cell in cells:
        fields = cell_fields(cell)
        icon = _ICON.get(cell.verdict, "")
        lines.append(_md_row((fields[0], f"{icon} {fields[1]}".strip(), *fields[2:])))
    return lines


def render_markdown(comparison: Comparison) -> str:
    """A self-contained Markdown report, suitable as a pull-request comment."""
    icon = ":x:" if comparison.failed else ":white_check_mark:"
    changed = [c for c in comparison.cells if c.verdict not in (UNCHANGED, STILL_FAILING)]
    changed.sort(key=lambda c: (SEVERITY.index(c.verdict), c.sort_key))
    lines = [
        f"## {icon} gam-bench performance check",
        "",
        f"**{summary_line(comparison)}**",
        "",
        f"Baseline `{comparison.baseline}`, candidate `{comparison.candidate}`.  ",
        f"Rule: {method_line(comparison)}.",
        "",
    ]
    lines += [f"> note: {note}" for note in comparison.notes] + ([""] if comparison.notes else [])
    if changed:
        lines += ["### Changes", "", *_md_table(changed), ""]
    else:
        lines += ["No cell changed beyond the thresholds.", ""]
    lines += ["<details><summary>All cells</summary>", "", *_md_table(comparison.cells), "", "</details>", ""]
    return "\n".join(lines)
