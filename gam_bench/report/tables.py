"""Markdown tables of a report: environment, status counts, the paper's Table 2 layout,
scaling exponents, crossovers and failed cells. Every function returns Markdown text and
sorts what it shows, so the same results always give the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from gam_bench.analysis import ExponentFit
from gam_bench.analysis.scaling import Crossover
from gam_bench.report import crossings
from gam_bench.report.curves import Group
from gam_bench.store import STATUSES

MISSING = "–"
MIB = 2**20


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]], align: str = "") -> str:
    """A GitHub Markdown table. align: one letter per column, "l" or "r" (default: l, then r)."""
    align = align or "l" + "r" * (len(headers) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = [_row(headers), _row(rule)] + [_row(r) for r in rows]
    return "\n".join(lines) + "\n"


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ").strip()


def fmt_num(value: object) -> str:
    """Three significant figures without scientific notation; "–" when missing."""
    if value is None or pd.isna(value):
        return MISSING
    v = float(value)
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def fmt_len(n: int | float) -> str:
    """Sequence length: 16384 -> "16k", 1000 -> "1000", 1234.5 -> "1,234"."""
    n = float(n)
    if n.is_integer() and n >= 1024 and n % 1024 == 0:
        return f"{int(n) // 1024}k"
    return f"{n:,.0f}"


def fmt_slope(fit: ExponentFit | None) -> tuple[str, str]:
    """(slope, "[low, high]") of a fit; "–" where there is none."""
    if fit is None:
        return MISSING, MISSING
    ci = f"[{fit.ci_low:.2f}, {fit.ci_high:.2f}]" if fit.has_ci else "none"
    return f"{fit.slope:.2f}", ci


def status_label(status: str) -> str:
    return "OOM" if status == "oom" else status


def _values(df: pd.DataFrame, column: str) -> str:
    vals = sorted({str(v) for v in df[column].dropna()})
    return ", ".join(vals) if vals else MISSING


def environment(df: pd.DataFrame) -> str:
    """Where and with what the results were measured (newest attempt of each cell)."""
    ok = df[df["status"] == "ok"]
    backends = [f"{model}: {_values(part, 'backend')}" for model, part in ok.groupby("model", sort=True)]
    started = df["started_at"].dropna()
    span = MISSING
    if not started.empty:
        span = f"{started.min():%Y-%m-%d %H:%M} to {started.max():%Y-%m-%d %H:%M} UTC"
    rows = [
        ("Suite", _values(df, "suite")),
        ("Device", _values(df, "device")),
        ("Device name", _values(df, "device_name")),
        ("CPU", _values(df, "cpu_model")),
        ("torch", _values(df, "torch_version")),
        ("CUDA", _values(df, "cuda_version")),
        ("Threads", _values(df, "threads")),
        ("Backends that ran", "; ".join(backends) or MISSING),
        ("Peak memory source", _values(df, "mem_source")),
        ("Executor", _values(df, "executor")),
        ("gam-bench", f"{_values(df, 'gam_bench_version')} (git {_short_shas(df)})"),
        ("Runs started", span),
    ]
    return markdown_table(["Setting", "Value"], rows, align="ll")


def one_row_per_cell(df: pd.DataFrame) -> pd.DataFrame:
    """The last row of each cell: its only row (throughput) or its highest `step` (perplexity).

    `df` holds the newest attempt of each cell only (`store.latest`)."""
    ordered = df.sort_values(["cell_id", "step"], na_position="first", kind="stable")
    return ordered.drop_duplicates("cell_id", keep="last").reset_index(drop=True)


def _short_shas(df: pd.DataFrame) -> str:
    shas = sorted({str(v)[:12] for v in df["git_sha"].dropna()})
    return ", ".join(shas) if shas else MISSING


def status_summary(df: pd.DataFrame) -> str:
    """Cells per task and model by status (last row of each cell), with a total row."""
    cells = one_row_per_cell(df)
    counts = pd.crosstab([cells["task"], cells["model"]], cells["status"])
    counts = counts.reindex(columns=list(STATUSES), fill_value=0)
    rows = [[task, model, *map(int, c), int(sum(c))] for (task, model), c in counts.iterrows()]
    totals = [int(counts[s].sum()) for s in STATUSES]
    rows.append(["**all**", "", *totals, sum(totals)])
    return markdown_table(["Task", "Model", *STATUSES, "total"], rows, align="ll" + "r" * (len(STATUSES) + 1))


# The paper's Table 2 puts time and memory of every model side by side (16 columns for five
# models with fraction of peak): too wide to read. The report gives one table per quantity
# instead, a row per model and a column per length.
LENGTH_TABLES = {
    "time": ("Median time per call (ms)", "time_ms", 1.0),
    "memory": ("Peak memory (MiB)", "peak_mem_bytes", 1 / MIB),
    "mfu": ("Fraction of the matmul peak", "mfu", 1.0),
}


def by_length(group: Group, quantity: str) -> str:
    """One quantity of the paper's Table 2 (a key of LENGTH_TABLES): a row per model, a column
    per length; a failed cell shows its status, a length outside the model's sweep is empty."""
    _, column, scale = LENGTH_TABLES[quantity]
    lengths = sorted({int(n) for s in group.series for n in s.points["seq_len"]})
    rows = []
    for s in group.series:
        points = {int(p["seq_len"]): p for _, p in s.points.iterrows()}
        rows.append([s.label, *(_cell_value(points.get(n), column, scale) for n in lengths)])
    return markdown_table(["Model", *(fmt_len(n) for n in lengths)], rows)


def table2(group: Group, mfu: bool = False) -> str:
    """The paper's Table 2, split: time, peak memory and (mfu) fraction of peak, each its own
    table under a bold caption."""
    parts = []
    for quantity in ("time", "memory", "mfu") if mfu else ("time", "memory"):
        parts.append(f"**{LENGTH_TABLES[quantity][0]}**\n\n{by_length(group, quantity)}")
    return "\n".join(parts)


def _cell_value(point: pd.Series | None, column: str, scale: float) -> str:
    if point is None:
        return ""  # not in the sweep
    if point["status"] != "ok":
        return status_label(point["status"])
    return fmt_num(point[column] * scale)


def exponents(group: Group) -> str:
    """Fitted slopes of log time and log peak memory against log length, per model."""
    rows = []
    for s in group.series:
        t_slope, t_ci = fmt_slope(s.time_fit)
        m_slope, _ = fmt_slope(s.mem_fit)
        win = s.time_fit.window if s.time_fit else ()
        span = f"{fmt_len(win[0])}–{fmt_len(win[-1])} ({len(win)} lengths)" if win else MISSING
        r2 = f"{s.time_fit.r2:.3f}" if s.time_fit else MISSING
        rows.append([s.label, t_slope, t_ci, r2, m_slope, span])
    headers = ["Model", "Time slope", "Time 95% CI", "Time fit R²", "Memory slope", "Window"]
    return markdown_table(headers, rows, align="lrrrrl")


def crossovers(group: Group) -> str:
    """Where each pair of models swaps order in time; a measured crossover whose curves'
    intervals do not separate on both sides is "within noise" (`crossings`). The letter marks
    the crossover on the time figure."""
    return crossover_table(group.crossovers, noise=crossings.judged(group), marks=crossings.letters(group))


def crossover_table(
    found: Iterable[Crossover],
    length: str = "length",
    noise: dict[tuple[str, str], bool] | None = None,
    marks: dict[tuple[str, str], str] | None = None,
) -> str:
    """A table of crossovers; `length` names the length axis. noise: (a, b) -> separated, for
    measured crossovers judged against the noise; marks: (a, b) -> the figure's letter."""
    rows = []
    for c in found:
        where = MISSING if c.seq_len is None else f"≈ {fmt_len(round(c.seq_len))}"
        at_longest = f"{c.faster_at_longest} ({fmt_len(c.longest_common)})"
        kind = crossings.basis(c, noise)
        beyond = MISSING if kind == crossings.WITHIN_NOISE else (c.faster_beyond or MISSING)
        mark = [marks.get((c.a, c.b), "")] if marks is not None else []
        rows.append([f"{c.a} vs {c.b}", where, kind, beyond, at_longest, *mark])
    headers = ["Pair", f"Crossover {length}", "Basis", "Faster beyond it", f"Faster at longest common {length}"]
    if marks is not None:
        headers.append("On the figure")
    return markdown_table(headers, rows, align="lrlll" + ("l" if marks is not None else ""))


def failures(df: pd.DataFrame) -> str:
    """Every cell whose newest attempt did not finish ok, with the first line of its message."""
    cells = one_row_per_cell(df)
    failed = cells[cells["status"] != "ok"]
    order = ["task", "level", "mode", "dtype", "batch_size", "model", "seq_len", "cell_id"]
    rows = [
        [
            r.task,
            f"{r.level} · {r.mode} · {r.dtype} · batch {_int_text(r.batch_size)}",
            r.model,
            _int_text(r.seq_len),
            status_label(r.status),
            _first_line(r.error),
        ]
        for r in failed.sort_values(order).itertuples()
    ]
    headers = ["Task", "Setting", "Model", "Seq. length", "Status", "Message"]
    return markdown_table(headers, rows, align="lllrll")


def _int_text(value: object) -> str:
    return MISSING if value is None or pd.isna(value) else str(int(value))


def _first_line(text: object, limit: int = 120) -> str:
    if not isinstance(text, str) or not text.strip():
        return MISSING
    line = text.strip().splitlines()[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"
