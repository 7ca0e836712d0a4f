"""Progress display of a sweep: a rich progress bar on a terminal, plain lines otherwise (CI),
and a summary table at the end. A model's `backend_reason` (which kernel path ran and why,
e.g. mamba-ssm's import error under `backend: auto`) is printed once per model and sweep,
even without progress lines: a slow fallback path is never silent."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from gam_bench.cell import Cell


def cell_label(cell: Cell) -> str:
    """One line naming a cell: the stored rows' label (analysis.rows.cell_label), then its data
    set and execution mode where they apply."""
    from gam_bench.analysis.rows import cell_label as row_label  # pandas: after the early worker start

    text = row_label({**cell.model_dump(), "config_json": cell.config_json}) + cell.task_spec.label(cell)
    text += f" compile={cell.compile}" if cell.compile != "eager" else ""
    return text + (" cuda_graph" if cell.cuda_graph else "")


class SweepProgress:
    """`with SweepProgress(total, console) as p: p.start(cell); p.finish(cell, row)`.

    `runs`: the bar's length when cells run in several passes (`measure.processes`): each
    pass of a cell advances it, `passed(cell)` for the earlier ones; the printed lines count
    cells (`total`)."""

    def __init__(self, total: int, console: Console, enabled: bool = True, runs: int | None = None) -> None:
        self.total = total
        self.runs = runs or total
        self.console = console
        self.enabled = enabled
        self.done = 0
        self._live = enabled and console.is_terminal
        self._bar: Progress | None = None
        self._task: Any = None
        self._reasons_shown: set[str] = set()

    def __enter__(self) -> SweepProgress:
        if self._live:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._bar.start()
            self._task = self._bar.add_task("starting", total=self.runs)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()

    def start(self, cell: Cell) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=cell_label(cell))

    def note(self, message: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=message[:80])

    def announce(self, message: str) -> None:
        """A line for the log (e.g. the counting pass and why instructions were not counted)."""
        if self.enabled:
            self.console.print(message, highlight=False, markup=False, soft_wrap=True)

    def pass_start(self, number: int, count: int, cells: int) -> None:
        """Pass `number` of `count` begins, over `cells` cells (after the first, in fresh workers)."""
        if self.enabled:
            fresh = " in fresh workers" if number > 1 else ""
            self.console.print(f"pass {number} of {count}{fresh}: {cells} cells", highlight=False)

    def passed(self, cell: Cell) -> None:
        """An earlier pass of the cell ended ok; its rows come with its last pass."""
        if self._bar is not None:
            self._bar.advance(self._task)

    def finish(self, cell: Cell, row: dict[str, Any]) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.advance(self._task)
        self._backend_reason(cell, row)
        if not self.enabled:
            return
        width = len(str(self.total))
        self.console.print(
            f"[{self.done:>{width}}/{self.total}] {row['status']:<8} {cell_label(cell)}  {_outcome_text(cell, row)}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )

    def _backend_reason(self, cell: Cell, row: dict[str, Any]) -> None:
        reason = row.get("backend_reason")
        if not reason or cell.model in self._reasons_shown:
            return
        self._reasons_shown.add(cell.model)
        backend = row.get("backend") or "?"
        self.console.print(f"{cell.model}: backend {backend}: {reason}", highlight=False, markup=False, soft_wrap=True)


def _outcome_text(cell: Cell, row: dict[str, Any]) -> str:
    if row["status"] == "ok":
        text = cell.task_spec.outcome(row)  # the task's words, else time and memory
        if text:
            return text
        if row.get("time_ms") is None:
            return f"{row.get('duration_s', 0):.1f} s"
        return f"{row['time_ms']:.2f} ms  {memory_text(row)}".rstrip()
    return (row.get("error") or "")[:100]


def memory_label(mem_source: str | None) -> str:
    """What a row's `peak_mem_bytes` is, in one word: rss (CPU), allocator (GPU) or peak."""
    source = mem_source or ""
    if source.endswith("_allocator"):
        return "allocator"
    return "rss" if "rss" in source else "peak"


def memory_text(row: dict[str, Any]) -> str:
    """A row's memory, labelled: live tensor bytes (what the report and `compare` use) first,
    then the device's own number, e.g. "tensors 846 MiB  rss 2617 MiB"."""
    parts = []
    if row.get("peak_tensor_bytes") is not None:
        parts.append(f"tensors {row['peak_tensor_bytes'] / 2**20:.0f} MiB")
    if row.get("peak_mem_bytes") is not None:
        parts.append(f"{memory_label(row.get('mem_source'))} {row['peak_mem_bytes'] / 2**20:.0f} MiB")
    return "  ".join(parts)


def summary_table(rows: list[dict[str, Any]], title: str) -> Table:
    """One line per cell of this run: the task's own columns (`Task.summary_columns`, e.g.
    perplexity: data set, tokens trained, final validation loss and perplexity, wall time),
    else status, median time, tokens/s and peak memory."""
    from gam_bench.tasks import get_task

    for name in dict.fromkeys(str(row.get("task") or "throughput") for row in rows):
        columns = get_task(name).summary_columns()
        if columns:
            return _task_table(rows, title, columns)
    labels = sorted({memory_label(row.get("mem_source")) for row in rows if row.get("peak_mem_bytes") is not None})
    device_mib = f"{'/'.join(labels) or 'peak'} MiB"
    table = Table(
        title=title,
        caption=f"tensor MiB: live tensor bytes, what the report and compare use; {device_mib}: "
        "the device's peak (RSS high-water mark on a CPU, allocator peak on a GPU)",
    )
    _model_column(table, rows)
    numbers = ("B", "T", "median ms", "tokens/s", "tensor MiB", device_mib)
    for name in ("level/mode/dtype", "B", "T", "status", "median ms", "tokens/s", "tensor MiB", device_mib):
        table.add_column(name, justify="right" if name in numbers else "left")
    for row in rows:
        ok = row["status"] == "ok" and row.get("time_ms") is not None
        table.add_row(
            row["model"],
            f"{row['level']}/{row['mode']}/{row['dtype']}" + _execution(row),
            str(row["batch_size"]),
            str(row["seq_len"]),
            row["status"],
            f"{row['time_ms']:.2f}" if ok else "-",
            f"{row['tokens_per_s']:.0f}" if ok else "-",
            _mib(row.get("peak_tensor_bytes")) if ok else "-",
            _mib(row.get("peak_mem_bytes")) if ok else "-",
        )
    return table


def _model_column(table: Table, rows: list[dict[str, Any]]) -> None:
    """The model column, never cut: at 80 columns `transformer` and `transformer-naive` would
    both become `transfor…`; the other columns wrap first."""
    width = max((len(str(row["model"])) for row in rows), default=5)
    table.add_column("model", no_wrap=True, min_width=width)


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f}"


def _execution(row: dict[str, Any]) -> str:
    """ "/compile=<mode>" and "/cuda_graph" for cells not run eagerly, else ""."""
    mode = row.get("compile") or "eager"
    return (f"/compile={mode}" if mode != "eager" else "") + ("/cuda_graph" if row.get("cuda_graph") else "")


def _task_table(rows: list[dict[str, Any]], title: str, columns: list[Any]) -> Table:
    """The model column, then the task's (header, justify, text of a row) columns."""
    table = Table(title=title)
    _model_column(table, rows)
    for header, justify, _text in columns:
        table.add_column(header, justify=justify)
    for row in rows:
        table.add_row(row["model"], *(text(row) for _header, _justify, text in columns))
    return table
