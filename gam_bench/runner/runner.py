"""Orchestration of a sweep: pre-flight, resume, budget skipping, rows into the store.

For each cell of the suite (in `expand` order: seq_len ascending within a group):
- resume: a cell whose newest stored attempt is `ok` is not run again (unless fresh);
- budget: once a cell ends `oom` or `timeout`, the longer lengths of its group (all other
  settings equal) are stored as `skipped` with the reason, and not run;
- otherwise the executor runs it; its rows are written at once (atomic part file), so a
  killed sweep loses at most the cells that were running;
- passes (`measure.processes` = P > 1): the sweep goes over its cells P times, each pass in
  fresh workers (`executor.resize`), and a cell's rows are written when its last pass ends,
  with every pass's samples merged (runner/processes.py); a killed sweep loses the earlier
  passes of the cells not yet written. A pass that fails ends the cell with that outcome
  ("process 2 of 3: ..."); the budget rule then applies as for a single pass.
- counting (`measure.instructions`): before the timing passes, one pass over the counting
  cells in workers started under valgrind (runner/counting.py); its columns join each
  cell's row.
A suite with a `search:` section has no grid: runner/search.py searches each model setting's
longest length that fits, every probe a cell run once in a fresh worker (`_Sweep.run_probe`:
no budget skipping, since a search probes shorter lengths after a failure).
The loop that hands out cells and stores their rows is `runner.parallel.run_groups`, for
any executor: one with one slot (local) runs the budget groups one after another.
An executor that `starts_early` (local) is built, and its first worker started, before the
sweep is planned when the device needs no resolving (not "auto"), a core is idle (1-minute
load below the usable cores minus 1) and no counting pass would replace it: the worker's
start-up (torch import, priming) then overlaps the parent's (imports, expand, pre-flight).
Without an idle core the two only compete (starting early then costs CPU and wall time), so
it is not done then. The store (pandas, pyarrow) and pre-flight (the model modules, so torch)
are imported after that start.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.console import Console

from gam_bench.cell import Cell, expand
from gam_bench.errors import SweepInterrupted, UserError
from gam_bench.runner.executor import Executor, Outcome, executor_class, make_executor
from gam_bench.runner.parallel import run_groups
from gam_bench.runner.progress import SweepProgress, summary_table
from gam_bench.suite import Suite, SuiteConfig, load_suite

BUDGET_STATUSES = ("oom", "timeout")


def plan(
    suite: Suite | str | os.PathLike[str], device: str | None = None, only: Iterable[str] | None = None
) -> tuple[Suite, SuiteConfig, list[Cell]]:
    """(suite, its config for the device, the validated, resolved cells): everything but running."""
    from gam_bench.measure.environment import resolve_device, usable_cores
    from gam_bench.runner.preflight import preflight  # imports the models, so torch

    if not isinstance(suite, Suite):
        suite = load_suite(suite)
    try:
        resolved = resolve_device(device or suite.base.device)
    except UserError as exc:
        raise UserError(f"--device: {exc}" if device else f"{suite.source}: device: {exc}") from None
    config = suite.for_device(resolved)
    cells = expand(suite, resolved, threads=usable_cores())
    cells = _only(cells, config, list(only or []))
    return suite, config, preflight(config, cells, suite.source)


def _only(cells: list[Cell], config: SuiteConfig, only: list[str]) -> list[Cell]:
    if not only:
        return cells
    names = [m.name for m in config.models]
    for name in only:
        if name not in names:
            raise UserError(
                f"--only: model {name!r} is not in this suite (its models: {', '.join(dict.fromkeys(names))})"
            )
    return [c for c in cells if c.model in only]


def results_dir(suite: Suite, out: str | os.PathLike[str] | None) -> Path:
    return Path(out) if out is not None else Path("results") / suite.name


def report_dir(suite: Suite, out: str | os.PathLike[str] | None) -> Path:
    """reports/<suite name>/, or with `out` beside its rows (out/report/): two runs to different
    folders never write the same report."""
    return Path(out) / "report" if out is not None else Path("reports") / suite.name


def run_suite(
    suite: Suite | str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    device: str | None = None,
    only: Iterable[str] | None = None,
    fresh: bool = False,
    executor: str = "local",
    executor_options: dict[str, Any] | None = None,
    progress: bool = True,
    report: bool = True,
    console: Console | None = None,
) -> Path:
    """Run a suite; rows go to `out` (default results/<suite name>/). Returns that folder.

    `executor_options` go to the executor's class (ray: address, max_concurrency)."""
    if not isinstance(suite, Suite):
        suite = load_suite(suite)
    options = executor_options or {}
    early = _early_executor(suite, device, executor, options)
    from gam_bench import store  # after the early worker started (see the module docstring)
    from gam_bench.runner.preflight import with_peaks

    folder = cells = None
    try:
        suite, config, cells = plan(suite, device, only)
        folder = results_dir(suite, out)
        regression = config.regression.model_dump() if config.regression else None  # what `compare` judges with
        store.write_suite_meta(folder, suite=suite.name, source=suite.source, regression=regression)
        console = console or _console()
        _gate_warnings(config, console)
        cells = with_peaks(cells, enabled=config.calibrate, note=console.print)  # calibrates on first use
        if config.search is not None:  # the longest length that fits, searched (gam_bench.search)
            early = _ensure_executor(early, executor, cells, config, options)
            from gam_bench.runner.search import search_suite

            search_suite(config, suite.source, cells, _Sweep(suite.name, folder, early), fresh, console, progress)
        else:
            done = set() if fresh else store.done_cell_ids(folder)
            todo = [c for c in cells if c.cell_id not in done]
            early = _ensure_executor(early, executor, cells, config, options)
            _grid(cells, todo, _Sweep(suite.name, folder, early), console, progress, folder, suite.name)
    except KeyboardInterrupt:
        if folder is None or cells is None:
            raise
        raise SweepInterrupted(_interrupted_text(folder, cells)) from None
    finally:
        if early is not None:
            early.close()
    if report:
        _write_report(folder, report_dir(suite, out), console)
    return folder


def _ensure_executor(
    early: Executor | None, executor: str, cells: list[Cell], config: SuiteConfig, options: dict[str, Any]
) -> Executor:
    """The early executor if it suits the planned cells, else a new one (the early one closed)."""
    if early is None or early.device != cells[0].device or early.plugins != list(config.plugins):
        if early is not None:
            early.close()
        early = make_executor(executor, device=cells[0].device, plugins=config.plugins, **options)
    return early


def _grid(
    cells: list[Cell], todo: list[Cell], runner: _Sweep, console: Console, progress: bool, folder: Path, name: str
) -> None:
    """Run the sweep's cells not stored ok yet (`todo`), with progress and the summary table."""
    if len(todo) < len(cells) and todo:
        console.print(
            f"resuming: {len(cells) - len(todo)} of {len(cells)} cells already stored ok in {folder} "
            "(--fresh measures them again)"
        )
    runs = sum(c.measure.processes + int(c.measure.instructions) for c in todo)
    with SweepProgress(len(todo), console, enabled=progress, runs=runs) as bar:
        rows = runner.run(todo, bar)
    if not todo:
        console.print(
            f"nothing to run: all {len(cells)} cells are already stored ok in {folder}; "
            "add --fresh to measure them again",
            highlight=False,
        )
    elif progress:
        console.print(summary_table(rows, f"{name}: {len(rows)} cells run, results in {folder}"))
        warning = busy_warning(rows)
        if warning:
            console.print(warning, style="yellow")


def _console() -> Console:
    """The terminal; piped or captured (CI logs), a wide one, so tables keep whole names."""
    console = Console()
    return console if console.is_terminal else Console(width=max(console.width, 160))


def _interrupted_text(folder: Path, cells: list[Cell]) -> str:
    """What Ctrl-C left behind: how many cells are stored where, and how to go on."""
    from gam_bench import store

    stored = len(store.done_cell_ids(folder) & {c.cell_id for c in cells})
    return (
        f"interrupted: {stored} of {len(cells)} cells are stored in {folder}; "
        "run the same command to resume (cells stored ok are not run again)"
    )


def _gate_warnings(config: SuiteConfig, console: Console) -> None:
    """A suite with a `regression:` section: say which of its gate settings can never fire."""
    if config.regression is None:
        return
    from gam_bench.analysis.reachability import problems

    for line in problems(config.measure, config.regression):
        console.print(f"warning: {config.name}: {line}", style="yellow", highlight=False, markup=False)


def _idle_core() -> bool:
    try:
        return os.getloadavg()[0] < len(os.sched_getaffinity(0)) - 1
    except (OSError, AttributeError):
        return False


def _early_executor(suite: Suite, device: str | None, executor: str, options: dict[str, Any]) -> Executor | None:
    """The executor, its first worker already starting, if it `starts_early`, the device is named
    (not "auto", which needs torch to resolve), a core is idle and the sweep counts no
    instructions (its counting pass starts workers of its own under valgrind first, and would
    only end this one); else None (built after planning)."""
    requested = device or suite.base.device
    if requested == "auto" or not executor_class(executor).starts_early or not _idle_core():
        return None
    if suite.for_device(requested).measure.instructions:
        return None
    chosen = make_executor(executor, device=requested, plugins=suite.for_device(requested).plugins, **options)
    chosen.prestart()
    return chosen


class _Sweep:
    """Runs cells through an executor, applying the budget rule, and writes their rows: the one
    place a sweep writes results (`store_rows`; `run_suite` writes the suite record). It is the
    `parallel.Sweep` the loop drives."""

    def __init__(self, suite_name: str, folder: Path, executor: Executor) -> None:
        self.suite_name = suite_name
        self.folder = folder
        self.executor = executor
        self.failed: dict[str, tuple[int, str]] = {}  # group -> (seq_len, status)
        self.last_env: dict[str, Any] = {}  # environment columns for rows no worker produced
        self.passes: dict[str, list[Outcome]] = {}  # cell_id -> ok outcomes of its earlier passes
        self.ended: set[str] = set()  # cells whose rows are written (or owed: the last pass ran)
        self.counts: dict[str, dict[str, Any]] = {}  # cell_id -> columns of its counting pass
        self.counting = False  # the counting pass is running (runner/counting.py)

    def store_rows(self, rows: list[dict[str, Any]]) -> None:
        """Append one finished cell's rows to the results folder (one new part file)."""
        from gam_bench import store  # not at import time: the early worker starts first

        store.append(rows, self.folder)

    def run(self, cells: list[Cell], bar: SweepProgress) -> list[dict[str, Any]]:
        """Every cell's last row, in the order of `cells`, after all passes."""
        from gam_bench.runner.counting import count_pass

        slots = self.executor.slots(cells) if cells else 1
        count = max((c.measure.processes for c in cells), default=1)
        rows: dict[str, dict[str, Any]] = {}
        count_pass(self, cells, bar, slots)
        for number in range(1, count + 1):
            todo = [c for c in cells if c.measure.processes >= number and c.cell_id not in self.ended]
            if not todo:
                break
            if number > 1:
                self.executor.resize(slots)  # every pass in fresh workers
            if count > 1:
                bar.pass_start(number, count, len(todo))
            for row in run_groups(self, todo, bar, slots):
                rows[row["cell_id"]] = row
        return [rows[c.cell_id] for c in cells if c.cell_id in rows]

    def run_probe(self, cell: Cell, bar: SweepProgress, columns: dict[str, Any]) -> dict[str, Any]:
        """One search probe (gam_bench.search): in a fresh worker, never skipped by the budget rule
        (a search probes shorter lengths after a failure); its row stored with `columns`."""
        self.failed.pop(cell.group_key, None)
        self.executor.resize(1)
        rows = [{**row, **columns} for row in self.run_cell(cell, bar)]
        self.store_rows(rows)
        return rows[-1]

    def run_cell(self, cell: Cell, bar: SweepProgress) -> list[dict[str, Any]]:
        """The cell's rows to store; none while passes of it remain (its outcome is kept)."""
        group, run_id = cell.group_key, uuid.uuid4().hex
        if self.counting:
            from gam_bench.runner.counting import count_cell

            self.counts[cell.cell_id] = count_cell(self.executor, cell, bar)
            return []
        if group in self.failed:
            seq_len, status = self.failed[group]
            reason = f"budget: same settings ended {status} at seq_len={seq_len}"
            env = {**self.last_env, "load_avg_1m": None}  # nothing ran
            self.ended.add(cell.cell_id)
            self.passes.pop(cell.cell_id, None)
            return [self._row(cell, run_id, Outcome("skipped", error=reason, env=env))]
        outcome = self.executor.run(cell, on_progress=bar.note)
        if not outcome.env:  # no worker ever started: describe this process instead
            outcome.env = self.last_env or _parent_env(cell.device)
        self.last_env = outcome.env
        outcome = self._after_pass(cell, outcome)
        if outcome is None:
            return []
        self.ended.add(cell.cell_id)
        if outcome.status in BUDGET_STATUSES:
            self.failed[group] = (cell.seq_len, outcome.status)
        return [self._row(cell, run_id, outcome, m) for m in outcome.rows or [{}]]

    def _after_pass(self, cell: Cell, outcome: Outcome) -> Outcome | None:
        """The cell's outcome once it has one: a failed pass, or all passes merged; None while
        passes remain (the ok outcome is kept)."""
        count = cell.measure.processes
        if count == 1:
            return outcome
        done = self.passes.setdefault(cell.cell_id, [])
        if outcome.status != "ok":
            outcome.error = f"process {len(done) + 1} of {count}: {outcome.error}"
            del self.passes[cell.cell_id]
            return outcome
        done.append(outcome)
        if len(done) < count:
            return None
        from gam_bench.runner.processes import merge_outcomes

        del self.passes[cell.cell_id]
        return merge_outcomes(done)

    def _row(self, cell: Cell, run_id: str, outcome: Outcome, measured: dict[str, Any] | None = None) -> dict[str, Any]:
        from gam_bench import store

        known = store.columns()
        row = {k: v for k, v in outcome.env.items() if k in known}
        row.update(measured or {})
        row.update(self.counts.get(cell.cell_id, {}) if outcome.status == "ok" else {})
        row.update(_identity(cell, self.suite_name, run_id))
        row.update(
            status=outcome.status,
            error=outcome.error,
            executor=self.executor.name,
            started_at=outcome.started_at,
            duration_s=outcome.duration_s,
            threads=row.get("threads") or cell.threads,  # the executor's: a Ray GPU worker's own share
        )
        row.setdefault("seed", cell.seed)
        row.setdefault("d_model", cell.d_model)  # also for failed cells (the task's own value wins)
        row.setdefault("n_layers", cell.n_layers)
        return row


def _parent_env(device: str) -> dict[str, Any]:
    from gam_bench.measure.environment import environment

    return {**environment(device), "load_avg_1m": None}


def _identity(cell: Cell, suite_name: str, run_id: str) -> dict[str, Any]:
    return {
        "suite": suite_name,
        "cell_id": cell.cell_id,
        "run_id": run_id,
        "task": cell.task,
        "model": cell.model,
        "family": cell.family,
        "level": cell.level,
        "mode": cell.mode,
        "device": cell.device,
        "dtype": cell.dtype,
        "compile": cell.compile,
        "cuda_graph": cell.cuda_graph,
        "batch_size": cell.batch_size,
        "seq_len": cell.seq_len,
        "config_json": cell.config_json,
    }


def busy_warning(rows: list[dict[str, Any]]) -> str | None:
    """A warning when other work competed for the CPU (load above the usable cores)."""
    from gam_bench.measure.environment import usable_cores

    loads = [r["load_avg_1m"] for r in rows if r.get("load_avg_1m") is not None]
    cores = usable_cores()
    if not loads or max(loads) <= cores + 0.5:
        return None
    return (
        f"warning: the machine was busy during this run (1-minute load average up to {max(loads):.1f} "
        f"on {cores} cores): timings are noisy; see the load_avg_1m column"
    )


def _write_report(folder: Path, report_folder: Path, console: Console) -> None:
    try:
        from gam_bench.report import write_report
    except ImportError:
        console.print("report: gam_bench.report is not available; skipped (use `gam-bench report` later)")
        return
    if not folder.exists():
        return
    path = write_report(folder, report_folder)
    console.print(f"report: {path}")
