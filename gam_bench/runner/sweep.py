"""One sweep's cells through an executor: the passes, the counting pass, the budget rule, the rows.

`CellSweep` is the `parallel.Sweep` that `parallel.run_groups` drives, and the one place a
sweep writes results (`store_rows`; the runner writes the suite record):
- budget: once a cell ends `oom` or `timeout`, the longer lengths of its group (all other
  settings equal) are stored as `skipped` with the reason, and not run;
- passes (`measure.processes` = P > 1): `run` goes over the cells P times, each pass in fresh
  workers (`executor.resize`), and a cell's rows are written when its last pass ends, with
  every pass's samples merged (runner/processes.py). A pass that fails ends the cell with that
  outcome ("process 2 of 3: ..."); the budget rule then applies as for a single pass;
- counting (`measure.instructions`): before the timing passes, one pass over the counting
  cells in workers started under valgrind (runner/counting.py); its columns join each cell's row;
- search probes (`run_probe`, runner/search.py): a cell run once in a fresh worker, never
  skipped by the budget rule.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from gam_bench.cell import Cell
from gam_bench.runner.executor import Executor, Outcome
from gam_bench.runner.parallel import run_groups
from gam_bench.runner.progress import SweepProgress

BUDGET_STATUSES = ("oom", "timeout")


class CellSweep:
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
