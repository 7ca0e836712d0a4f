"""The sweep loop: budget groups side by side, as many as the executor has slots.

The runner hands each budget group (`Cell.group_key`: all settings equal but seq_len) to
one of `executor.slots(cells)` threads (one for the local executor: the groups then run
one after another, in `expand` order). Within a group the cells run one after another in
seq_len order, so the budget rule (an oom or timeout skips the longer lengths of its group)
and resume behave the same for any number of slots. `executor.run` is thread-safe.

The driver alone writes the store: each finished cell's rows go to `sweep.store_rows` (the
`sweep.CellSweep`, the one module that writes results) and to the progress display, under
one lock. On Ctrl-C or any error, no further cell starts, the
executor is closed (which ends the cells in flight) and their rows are dropped: an
interrupted sweep loses the cells that were running, which resume runs again.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, Protocol

from gam_bench.cell import Cell

if TYPE_CHECKING:
    from gam_bench.runner.executor import Executor
    from gam_bench.runner.progress import SweepProgress

_WAIT_S = 0.5  # how often the main thread wakes up (so Ctrl-C is seen at once)


class Sweep(Protocol):
    """What the loop drives (`sweep.CellSweep`): its executor, one cell's run, and the store."""

    executor: Executor
    counts: dict[str, dict[str, Any]]  # cell_id -> columns of its counting pass (runner/counting.py)
    counting: bool  # the counting pass is running

    def run_cell(self, cell: Cell, bar: SweepProgress) -> list[dict[str, Any]]:
        """The cell's rows to store (none while passes of it remain)."""

    def store_rows(self, rows: list[dict[str, Any]]) -> None:
        """Append one finished cell's rows to the results."""


class _Shared:
    """What the group threads share: the store lock, the stop flag and the summary rows."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.summary: dict[str, dict[str, Any]] = {}  # cell_id -> last row of the cell


def groups_of(cells: list[Cell]) -> list[list[Cell]]:
    """Cells split into budget groups, in order of first appearance; each keeps its order."""
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.group_key, []).append(cell)
    return list(groups.values())


def run_groups(sweep: Sweep, cells: list[Cell], bar: SweepProgress, slots: int) -> list[dict[str, Any]]:
    """Run `cells` through `sweep` with up to `slots` groups at once.

    Returns the last row of every cell that stored rows, in the order of `cells` (a cell with
    passes left returns no rows: sweep.CellSweep keeps its outcome).
    """
    groups = groups_of(cells)
    shared = _Shared()
    with ThreadPoolExecutor(max_workers=max(1, min(slots, len(groups))), thread_name_prefix="gam-bench-group") as pool:
        futures = [pool.submit(_run_group, sweep, group, bar, shared) for group in groups]
        try:
            _wait_all(futures)
        except BaseException:
            with shared.lock:
                shared.stop.set()
            for future in futures:
                future.cancel()
            sweep.executor.close()  # ends the cells in flight; their threads then return
            raise
    ids = [c.cell_id for c in cells]
    return [shared.summary[i] for i in ids if i in shared.summary]


def _wait_all(futures: list[Future]) -> None:
    """Block until every future is done; re-raise the first failure (or a Ctrl-C) at once."""
    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=_WAIT_S, return_when=FIRST_EXCEPTION)
        for future in done:
            future.result()


def _run_group(sweep: Sweep, group: list[Cell], bar: SweepProgress, shared: _Shared) -> None:
    for cell in group:
        if shared.stop.is_set():
            return
        bar.start(cell)
        rows = sweep.run_cell(cell, bar)
        with shared.lock:
            if shared.stop.is_set():
                return  # interrupted: this cell's outcome is not trusted, it is run again on resume
            if not rows:  # an earlier pass of the cell (measure.processes): nothing to store yet
                bar.passed(cell)
                continue
            sweep.store_rows(rows)
            bar.finish(cell, rows[-1])
            shared.summary[cell.cell_id] = rows[-1]
