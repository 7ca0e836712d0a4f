"""The `Task` interface: everything the harness needs to know about one task.

A task answers one question about a model (how fast, how well it trains, how it decodes, what
it recalls). The suite, the cell, the store, pre-flight, the worker, progress, the dry run,
the report and the gate (`compare` / `check`) ask the task; none of them names one. A task is
a `Task` subclass registered in `gam_bench.tasks.TASKS` (see gam_bench.tasks for the three
ways in). What it declares:

- `settings`: the pydantic model of its suite section (`<name>:`) and of its cells' `settings`
  (None: the task has no settings); `section_required`: a suite must give the section (else
  the defaults are used).
- `modes` / `default_mode`: what a cell of the task can time.
- `columns`: the columns it adds to the row schema (name -> type name, see `COLUMN_TYPES`).
- `capabilities`: which generic cell features it honours (compile and CUDA graphs,
  `measure.processes`, worker priming, matmul-peak calibration).
- `points(settings, seq_len, mode)`: how a suite point expands into cells.
- `model_needs(cell)`: the model config it decides (max_seq_len, vocab_size, defaults).
- `check_suite`, `preflight`: its checks at load time and in the parent before any cell runs.
- `run(cell, ctx)`: the work, in the worker; returns rows of store columns.
- `outcome`, `label`, `dry_run_columns`, `summary_columns`: what progress and the dry run show.
- `report_section`, `method_note` (or a `report` module): its part of report.md.
- `gate_metrics`: the metrics `compare` / `check` may judge, each with a direction.

This module does not import torch; a task's `run` imports what it needs when it is called.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel

from gam_bench.settings import TRAINING_MODES

if TYPE_CHECKING:
    import pandas as pd

    from gam_bench.cell import Cell

# The type names a task's columns may have (the store maps each to its Arrow type).
COLUMN_TYPES = ("float64", "int64", "string", "bool", "list<float64>", "list<int64>")


@dataclass(frozen=True)
class Capabilities:
    """Generic cell features a task honours; pre-flight refuses them for a task that does not.

    compile: `compile` and `cuda_graph` (gam_bench.execution). processes: `measure.processes`
    > 1 (its rows keep per-step time samples to merge over processes). priming: the worker runs
    `Task.prime(cell)` once per model setting before the first such cell. calibration: its
    cells get this machine's matmul peak (`peak_flops_per_s`, for the rows' mfu).
    instructions: `measure.instructions` (a counting pass under callgrind runs
    `Task.count_instructions`, runner/counting.py). search: a suite's `search:` section (its
    cells' lengths are searched, gam_bench.search: one cell per length, settings that do not
    depend on it)."""

    compile: bool = False
    processes: bool = False
    priming: bool = False
    calibration: bool = False
    instructions: bool = False
    search: bool = False


@dataclass(frozen=True)
class GateMetric:
    """A metric the gate may compare, and which way is better.

    name: what the comparison calls it ("time", "memory", "instructions", "accuracy"). column:
    the row column judged. better: "lower" or "higher". deterministic: one run fixes its value
    (a count, tensor bytes); a timed metric is not. kind: "time" (the stored samples, judged by
    rank test and effect size, analysis.judge.judge_time), "memory" (the peak-memory column
    the rows share, analysis.rows.memory_column) or "count" (one value per row, judged by its
    change alone, analysis.judge.judge_count, before memory and time). A count's threshold
    (a fraction of the baseline) is the `regression:` settings field named by `setting`, else
    `threshold`."""

    name: str
    column: str
    better: Literal["lower", "higher"] = "lower"
    deterministic: bool = False
    kind: Literal["time", "memory", "count"] = "count"
    threshold: float = 0.01
    setting: str | None = None


@dataclass(frozen=True)
class Origin:
    """Where a cell came from in its suite file, for pre-flight messages.

    source: the suite file. model_at: its models entry ("models[1]"). from_model: the
    override fields the entry sets (others came from the axes)."""

    source: str
    model_at: str
    from_model: frozenset[str] = frozenset()

    def at(self, name: str) -> str:
        """ "<file>: models[i].overrides.<name>" or "<file>: axes.<name>"."""
        return f"{self.source}: " + (f"{self.model_at}.overrides.{name}" if name in self.from_model else f"axes.{name}")

    @property
    def model(self) -> str:
        """ "<file>: models[i]"."""
        return f"{self.source}: {self.model_at}"


@dataclass(frozen=True)
class ModelNeeds:
    """What a task decides about a cell's model config (gam_bench.models.builder.resolve_config).

    positions: the positions it feeds the model (max_seq_len is raised to it, and an override
    below it is refused). who: the cell in words for that message ("a both cell at
    seq_len=12"). vocab_size: its vocabulary (None: the model's own); vocab_from: what sets it,
    for the message when an override differs. defaults: config values under the overrides
    (e.g. the task's dropout), for the fields the model has."""

    positions: int
    who: str
    vocab_size: int | None = None
    vocab_from: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)


class RunContext(Protocol):
    """What a task's `run` may use besides its cell and model."""

    def progress(self, message: str) -> None:
        """Report a line to the parent's progress display."""


class Silent:
    """A `RunContext` that reports nowhere (a task run outside a worker, e.g. in a test)."""

    def progress(self, message: str) -> None:
        return None


SILENT = Silent()


class Task:
    """The base of every task; a subclass sets `name` and overrides what differs."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    settings: ClassVar[type[BaseModel] | None] = None
    section_required: ClassVar[bool] = True
    modes: ClassVar[tuple[str, ...]] = TRAINING_MODES
    default_mode: ClassVar[str] = "forward_backward"
    columns: ClassVar[dict[str, str]] = {}
    capabilities: ClassVar[Capabilities] = Capabilities()
    gate_metrics: ClassVar[tuple[GateMetric, ...]] = ()

    # ---------------------------------------------------------------- suite and cells

    def suite_settings(self, section: dict[str, Any] | None) -> BaseModel | None:
        """The validated `<name>:` section (None when the task has no settings). Raises
        pydantic's ValidationError; the suite locates it."""
        if self.settings is None:
            return None
        return self.settings.model_validate(section or {})

    def entry_settings(self, settings: BaseModel | None, own: dict[str, Any]) -> BaseModel | None:
        """The suite's settings with a models entry's own `<name>:` fields in their place."""
        if settings is None or not own:
            return settings
        return type(settings).model_validate({**settings.model_dump(), **own})

    def check_suite(self, config: Any, raw: dict[str, Any], where: Callable[[list[Any]], str]) -> None:
        """Load-time checks beyond the settings model; raise UserError. where(loc): the text
        locating a field (file, profile prefix and field) for the message."""

    def points(self, settings: BaseModel | None, seq_len: int, mode: str) -> list[tuple[BaseModel | None, dict]]:
        """The cells of one suite point: (the cell's settings, cell fields it sets) for each."""
        return [(settings, {})]

    def check_cell(self, cell: Cell) -> None:
        """A cell's own consistency (raise ValueError), after its mode was checked against `modes`."""

    def budget_identity(self, settings: dict[str, Any]) -> dict[str, Any]:
        """The settings as they count for budget groups (cells that differ only in length)."""
        return settings

    # ---------------------------------------------------------------- pre-flight and worker

    def preflight(self, cell: Cell, config: Any, origin: Origin) -> None:
        """Parent-side check of a resolved cell (config: its model's validated config); raise UserError."""

    def run(self, cell: Cell, ctx: RunContext) -> list[dict[str, Any]]:
        """Measure one cell in the worker: rows of store columns (the runner adds identity,
        status and environment). Signal failure by raising."""
        raise NotImplementedError(f"task {self.name!r} has no run")

    def count_instructions(self, cell: Cell, ctx: RunContext) -> list[dict[str, Any]]:
        """In a counting worker (under callgrind): one row of instruction columns (only with
        `capabilities.instructions`)."""
        raise NotImplementedError(f"task {self.name!r} does not count instructions")

    def model_needs(self, cell: Cell) -> ModelNeeds:
        """What the task decides about the cell's model config: by default max_seq_len covers
        the cell's seq_len and the rest is the model's own (see `ModelNeeds`)."""
        return ModelNeeds(cell.seq_len, f"a {cell.task} cell at seq_len={cell.seq_len}")

    def prime(self, cell: Cell) -> None:
        """Pay the model's one-time costs untimed (only with `capabilities.priming`)."""

    # ---------------------------------------------------------------- progress and dry run

    def label(self, cell: Cell) -> str:
        """Text added to a cell's one-line label (e.g. its data set); "" for none."""
        return ""

    def outcome(self, row: dict[str, Any]) -> str:
        """A finished ok row in a few words for the progress line ("": the runner's time and memory)."""
        return ""

    def dry_run_columns(self) -> dict[str, Callable[[Cell], str]]:
        """Extra columns of the dry-run table: header -> the cell's text."""
        return {}

    def summary_columns(self) -> list[tuple[str, str, Callable[[dict[str, Any]], str]]]:
        """The end-of-sweep table's columns after the model: (header, "left" | "right", the text of
        a row); [] for the default (time, throughput and memory)."""
        return []

    # ---------------------------------------------------------------- report

    # A report module with `section(rows, out_dir, figures, colors)` and, optionally,
    # `labels(rows)` and `METHOD` (e.g. "gam_bench.report.throughput"); the hooks below use it.
    report: ClassVar[str | None] = None

    def report_labels(self, newest: pd.DataFrame) -> list[str]:
        """Series labels of its figures, so that one palette colours a model alike everywhere."""
        labels = getattr(self._report(), "labels", None)
        return labels(newest) if labels is not None else []

    def report_section(self, newest: pd.DataFrame, out_dir: Path, figures: str, colors: dict[str, str]) -> str:
        """Its Markdown section(s) of report.md from its rows (newest attempts only); "" for none.
        Figures go to out_dir / figures."""
        module = self._report()
        return module.section(newest, out_dir, figures, colors) if module is not None else ""

    def method_note(self) -> str:
        """Its Markdown bullets under "## Method", shown when its section is."""
        return str(getattr(self._report(), "METHOD", ""))

    def _report(self) -> Any:
        return importlib.import_module(self.report) if self.report else None

    def __repr__(self) -> str:
        return f"<task {self.name}>"
