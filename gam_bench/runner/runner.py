"""Orchestration of a sweep: pre-flight, resume, budget skipping, rows into the store.

For each cell of the suite (in `expand` order: seq_len ascending within a group):
- resume: a cell whose newest stored attempt is `ok` is not run again (unless fresh);
- otherwise it goes to the sweep (runner/sweep.py `CellSweep`: the budget rule, the passes of
  `measure.processes`, the counting pass of `measure.instructions`); its rows are written at
  once (atomic part file), so a killed sweep loses at most the cells that were running (and
  the earlier passes of the cells not yet written).
A suite with a `search:` section has no grid: runner/search.py searches each model setting's
longest length that fits, every probe a cell run once in a fresh worker
(`CellSweep.run_probe`: no budget skipping, since a search probes shorter lengths after a
failure).
The loop that hands out cells and stores their rows is `runner.parallel.run_groups`, for
any executor: one with one slot (local) runs the budget groups one after another.
An executor that `starts_early` (local) is built, and its first worker started, before the
sweep is planned when the device needs no resolving (not "auto"), a core is idle (1-minute
load below the usable cores minus 1) and no counting pass or search would replace it: the
worker's start-up (torch import, priming) then overlaps the parent's (imports, expand,
pre-flight).
Without an idle core the two only compete (starting early then costs CPU and wall time), so
it is not done then. The store (pandas, pyarrow) and pre-flight (the model modules, so torch)
are imported after that start.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.console import Console

from gam_bench.cell import Cell, expand
from gam_bench.errors import SweepInterrupted, UserError
from gam_bench.runner.executor import Executor, executor_class, make_executor
from gam_bench.runner.progress import SweepProgress, summary_table
from gam_bench.runner.sweep import CellSweep
from gam_bench.suite import Suite, SuiteConfig, load_suite


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
        gate_warnings(config, console)
        cells = with_peaks(cells, enabled=config.calibrate, note=console.print)  # calibrates on first use
        if config.search is not None:  # the longest length that fits, searched (gam_bench.search)
            early = _ensure_executor(early, executor, cells, config, options)
            from gam_bench.runner.search import search_suite

            search_suite(config, suite.source, cells, CellSweep(suite.name, folder, early), fresh, console, progress)
        else:
            done = set() if fresh else store.done_cell_ids(folder)
            todo = [c for c in cells if c.cell_id not in done]
            early = _ensure_executor(early, executor, cells, config, options)
            _grid(cells, todo, CellSweep(suite.name, folder, early), console, progress, folder, suite.name)
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
    cells: list[Cell], todo: list[Cell], runner: CellSweep, console: Console, progress: bool, folder: Path, name: str
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


def gate_warnings(config: SuiteConfig, console: Console) -> None:
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
    (not "auto", which needs torch to resolve), a core is idle, and neither a counting pass (its
    workers start under valgrind) nor a search (every probe in a fresh worker) would only end
    it; else None (built after planning)."""
    requested = device or suite.base.device
    if requested == "auto" or not executor_class(executor).starts_early or not _idle_core():
        return None
    config = suite.for_device(requested)
    if config.measure.instructions or config.search is not None:  # a fresh pool replaces it at once
        return None
    chosen = make_executor(executor, device=requested, plugins=config.plugins, **options)
    chosen.prestart()
    return chosen


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
