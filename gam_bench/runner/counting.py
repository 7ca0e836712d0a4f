"""The counting pass: instructions per step for cells with `measure.instructions: true`.

Before its timing passes, the sweep runs its counting cells once more in workers started
under valgrind's callgrind (measure/valgrind.py writes the launcher; the local executor
starts its workers through it; the worker then runs the task's `count_instructions` instead of
its `run`). A counting worker serves every counting cell of its slot, so valgrind's start
(the torch import under it: 20-30 s of CPU) is paid once per slot. Counts do not depend on
what else runs on the machine, so the pass runs one worker per usable core (up to one per
budget group; `counting_slots`), where the timing passes run one at a time. The pass stores
nothing itself: each cell's counting columns (`instructions`, `instructions_samples`,
`instructions_tool`, `instructions_build`) wait in `sweep.counts` and join the cell's row when its timing passes
end (runner/sweep.py `CellSweep._row`).

Where no count can be made, every counting cell's row records why in
`instructions_reason`, and the run prints it once: valgrind missing or too old, an
executor that cannot start workers under a launcher (Ray), or the counting worker failing
on the cell (its error). A row never silently lacks its count.

A counting cell's timeout is `limits.timeout_s` x `SLOWDOWN` (a step runs hundreds of times
slower under callgrind). No torch here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from gam_bench.cell import Cell
from gam_bench.errors import UserError
from gam_bench.measure import valgrind
from gam_bench.runner.parallel import Sweep, run_groups
from gam_bench.runner.progress import SweepProgress

SLOWDOWN = 50  # the counting pass's timeout, in multiples of the cell's own


def _counters() -> str:
    from gam_bench.tasks import all_tasks

    return " and ".join(task.name for task in all_tasks() if task.capabilities.instructions)


def check_cell(cell: Cell, source: str) -> None:
    """Pre-flight: `measure.instructions` is for eager CPU throughput cells (UserError otherwise)."""
    if not cell.measure.instructions:
        return
    problem = (
        f"task {cell.task!r} ({_counters()} cells only)"
        if not cell.task_spec.capabilities.instructions
        else f"device {cell.device!r} (CPU cells only: valgrind runs host code)"
        if cell.device.split(":")[0] != "cpu"
        else f"compile: {cell.compile} (eager cells only: a compile under valgrind would take hours)"
        if cell.compile != "eager"
        else None
    )
    if problem:
        raise UserError(f"{source}: measure.instructions: true cannot count {problem}")


def counting_cells(cells: list[Cell]) -> list[Cell]:
    return [cell for cell in cells if cell.measure.instructions]


def reason_columns(reason: str) -> dict[str, Any]:
    return {"instructions": None, "instructions_samples": None, "instructions_reason": reason}


def outcome_columns(outcome: Any) -> dict[str, Any]:
    """A counting outcome -> the columns it adds to the cell's row."""
    if outcome.status != "ok" or not outcome.rows:
        first = (outcome.error or "no result").strip().splitlines()[0] if outcome.error else "no result"
        return reason_columns(f"counting worker: {outcome.status}: {first}")
    row = outcome.rows[0]
    keys = ("instructions", "instructions_samples", "instructions_tool", "instructions_build")
    return {**{key: row.get(key) for key in keys}, "instructions_reason": None}


def count_cell(executor: Any, cell: Cell, bar: Any) -> dict[str, Any]:
    """Run `cell` on a counting worker; its counting columns, and a log line saying what came of it."""
    from gam_bench.runner.progress import cell_label

    columns = outcome_columns(executor.run(counting_cell(cell), on_progress=bar.note))
    value = columns.get("instructions")
    result = f"{value:,.0f} instructions a step" if value else columns["instructions_reason"]
    bar.announce(f"counted {cell_label(cell)}: {result}")
    return columns


def counting_cell(cell: Cell) -> Cell:
    """The cell as sent to a counting worker: its timeout stretched by SLOWDOWN."""
    limits = cell.limits.model_copy(update={"timeout_s": cell.limits.timeout_s * SLOWDOWN})
    return cell.model_copy(update={"limits": limits})


def counting_slots(cells: list[Cell], slots: int) -> int:
    """Workers for the counting pass: one per usable core, at most one per budget group."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(slots, min(cores, len({cell.group_key for cell in cells})))


def count_pass(sweep: Sweep, cells: list[Cell], bar: SweepProgress, slots: int) -> None:
    """Fill `sweep.counts[cell_id]` for every counting cell of `cells` (see the module docstring)."""
    todo = counting_cells(cells)
    if not todo:
        return
    executor = sweep.executor
    found = valgrind.find()
    reason = found.reason
    if reason is None and not hasattr(executor, "launcher"):
        reason = f"the {executor.name} executor cannot start workers under valgrind (use --executor local)"
    if reason is not None:
        bar.announce(f"warning: instructions not counted in {len(todo)} cells: {reason}")
        sweep.counts.update({cell.cell_id: reason_columns(reason) for cell in todo})
        return
    folder = Path(tempfile.mkdtemp(prefix="gam-bench-callgrind-"))
    workers = counting_slots(todo, slots)
    bar.announce(
        f"counting instructions of {len(todo)} cells under {found.label} ({workers} workers started under valgrind)"
    )
    executor.resize(workers)
    executor.launcher = valgrind.write_launcher(folder, found)
    sweep.counting = True
    try:
        run_groups(sweep, todo, bar, workers)
    finally:
        sweep.counting = False
        executor.launcher = None
        executor.resize(slots)  # the timing passes in ordinary workers
        shutil.rmtree(folder, ignore_errors=True)
