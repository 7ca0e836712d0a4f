"""The worker process: runs cells sent by a LocalExecutor over a pipe, one at a time.

Started with the "spawn" method (never fork: CUDA and threads do not survive a fork).
Protocol (tuples over a multiprocessing Connection):
  worker -> parent  ("ready", env) once started, or ("fatal", message) and exit
  parent -> worker  a `Cell`, or None to stop
  worker -> parent  ("progress", message) any number of times during a cell, then
                    ("result", result dict) with status ok | oom | diverged | error
After a failed cell the worker exits, so the next cell gets a fresh process.

Columns a worker adds: the environment (measure/environment) and `malloc_tuned` (process-wide,
set at start-up), the cell-start columns (free/total device memory before the cap and, on an
accelerator, its provenance: numerics flags, kernel versions, GPU clocks), and the peak
memory around the task (`peak_mem_bytes` / `mem_source`; on CPU also `peak_rss_bytes`). A
failed cell's result carries one row of its cell-start columns, so an `oom` row says how
much memory was free when the cell began. A CPU cell calls no accelerator API at all (no
context is created on a GPU machine).

A counting worker (started under valgrind for cells with `measure.instructions`,
runner/counting.py; `valgrind.counting_folder()` is set) says so on start-up, leaves
callgrind's instrumentation off (each cell switches it on around its counted steps only:
measure/instructions.py), skips the priming (each counted cell warms up at its own shape,
and a step under valgrind is costly), and runs the task's `count_instructions`
(throughput: tasks/throughput/instructions.py) instead of its `run`, without the memory cap or
peak-memory columns (valgrind's own address space would trip the cap, and nothing it
measures there is a memory figure).
"""

from __future__ import annotations

import ctypes
import datetime as dt
import os
import signal
import sys
import time
import traceback
from typing import Any

from gam_bench.cell import Cell
from gam_bench.tasks.base import RunContext

_PR_SET_PDEATHSIG = 1
_MAX_ERROR_CHARS = 4000


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the parent dies, so a killed sweep leaves no orphans."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass


class CellContext:
    """The worker's `RunContext` (gam_bench.tasks.base): `progress(message)` reports to the parent."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def progress(self, message: str) -> None:
        self._conn.send(("progress", str(message)))


def main(conn: Any, device: str, plugins: list[str]) -> None:
    """Worker entry point (the target of the spawned Process)."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops us
    try:
        env = prepare(device, plugins)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, then exit
        conn.send(("fatal", _describe(exc)))
        return
    conn.send(("ready", env))
    _serve(conn)


_PROCESS_COLUMNS: dict[str, Any] = {}  # set by prepare(), added to every cell's environment


def prepare(device: str, plugins: list[str]) -> dict[str, Any]:
    """Start-up of a worker process (local, or a Ray cell worker): tune glibc malloc, import the
    plugins, prime the device, then freeze the objects that exist now out of the garbage
    collector's scans; returns the environment columns. Raises if the worker cannot start.

    gc.freeze: the per-cell heap trim runs gc.collect(), which otherwise walks the ~200k objects
    of torch and the imports in every cell; frozen objects are never freed, which they would
    not be anyway."""
    import gc

    from gam_bench.measure.environment import environment
    from gam_bench.measure.memory import tune_malloc
    from gam_bench.suite import import_plugin

    _PROCESS_COLUMNS["malloc_tuned"] = tune_malloc()
    # Every cell's rows are checked through the store (`non_finite_error`): import it (pyarrow,
    # pandas) now, or a fresh worker's first cell maps those libraries under its memory cap (on
    # a CPU an address-space limit: a share of it, or an ImportError under a small cap).
    import gam_bench.store  # noqa: F401

    for module in plugins:
        import_plugin(module)
    if not _start_counting():  # a counting cell warms up at its own shape: priming would only cost
        _prime(device)
    env = {**environment(device), **_PROCESS_COLUMNS}
    gc.collect()
    gc.freeze()
    return env


def _prime(device: str) -> None:
    """Pay one-time costs (thread pools, autograd engine, lazy kernels, the tensor-memory
    dispatch mode) before any cell is timed. FLOPs are not counted here: FlopCounterMode
    imports torch._dynamo (1.3 s) on first use, and `_prime_model` pays that, untimed, for the
    first cell that counts FLOPs (none for a suite with `measure.flops: false`)."""
    import torch

    from gam_bench.measure.counted_step import count_step

    layer = torch.nn.Linear(64, 64).to(device)
    x = torch.randn(4, 32, 64, device=device, requires_grad=True)  # (B, T, D)

    def step() -> None:
        layer(x).float().mean().backward()

    count_step(step, flops=False, device=device)
    for _ in range(3):
        step()


def _start_counting() -> bool:
    """In a counting worker (True): import torch and check that valgrind runs this process.
    Instrumentation stays off until a cell's counted steps (measure/instructions.py)."""
    from gam_bench.measure.valgrind import counting_folder

    if counting_folder() is None:
        return False
    import torch  # noqa: F401 - the slow part of a counting worker's start (uninstrumented)

    from gam_bench.measure.callgrind import Callgrind, CountingUnavailable

    shim = Callgrind.load()
    if not shim.running():
        raise CountingUnavailable("started as a counting worker, but not under valgrind")
    print(f"gam-bench worker {os.getpid()}: counting instructions under valgrind", file=sys.stderr, flush=True)
    return True


def _prime_model(cell: Cell) -> None:
    """The cell's task pays the model's one-time costs untimed, if it primes (`Task.prime`)."""
    task = cell.task_spec
    if task.capabilities.priming:
        task.prime(cell)


def _serve(conn: Any) -> None:
    while True:
        try:
            cell = conn.recv()
        except (EOFError, OSError):
            return
        if cell is None:
            return
        result = run_cell(cell, CellContext(conn))
        conn.send(("result", result))
        if result["status"] != "ok":
            return  # replaced after any failure


def run_cell(cell: Cell, ctx: RunContext) -> dict[str, Any]:
    """Run one cell in this process; never raises (failures become a result)."""
    import torch

    from gam_bench.measure import memory
    from gam_bench.measure.environment import environment
    from gam_bench.measure.valgrind import counting_folder

    started_at = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    device = torch.device(cell.device)
    env: dict[str, Any] = {}
    start: dict[str, Any] = {}
    try:
        if cell.threads:
            torch.set_num_threads(cell.threads)
        env = {**environment(cell.device), **_PROCESS_COLUMNS}
        start = cell_start_columns(device)
        limits, counting = cell.limits, counting_folder() is not None
        # The cap first: priming runs model code, which must not escape the cap either.
        if not counting:
            memory.apply_cap(device, memory.cap_bytes(limits.mem_cap_gb, limits.mem_cap_fraction, device))
            _prime_model(cell)  # a counting cell warms up at its own shape (a step costs the same there)
        meter = memory.PeakMemory(device)
        meter.start()
        rows, status, error = run_task(cell, ctx, counting)
        peak = {} if counting else peak_columns(meter)
        for row in rows:
            for name, value in {**start, **peak}.items():
                row.setdefault(name, value)
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a row
        rows, status, error = [dict(start)] if start else [], ("oom" if memory.is_oom(exc) else "error"), _describe(exc)
        del exc
    return {
        "status": status,
        "error": error,
        "rows": rows,
        "env": env or {**environment(cell.device), **_PROCESS_COLUMNS},
        "started_at": started_at,
        "duration_s": time.perf_counter() - t0,
    }


def run_task(cell: Cell, ctx: RunContext, counting: bool = False) -> tuple[list[dict[str, Any]], str, str | None]:
    """The task's rows, status and error: ok; `diverged` when training met a non-finite value
    (with the rows it had); `error` when rows it returned as ok hold NaN or inf. `counting`:
    the cell runs under valgrind, counting instructions (`Task.count_instructions`)."""
    from gam_bench.training.divergence import STATUS, Diverged

    task = cell.task_spec
    try:
        rows = task.count_instructions(cell, ctx) if counting else task.run(cell, ctx)
    except Diverged as exc:
        return exc.stored_rows(), STATUS, exc.reason
    error = non_finite_error(rows)
    return rows, ("ok" if error is None else "error"), error


def non_finite_error(rows: list[dict[str, Any]]) -> str | None:
    """Why rows a task returned as ok are not: the first non-finite value (a task that let a
    NaN or inf through is an error, never an ok row)."""
    from gam_bench.store import non_finite_columns

    for i, row in enumerate(rows):
        bad = non_finite_columns(row)
        if bad:
            values = ", ".join(f"{name}={row[name]!r}" for name in bad[:4])
            return f"non-finite result in row {i + 1} of {len(rows)}: {values}"
    return None


def cell_start_columns(device: Any) -> dict[str, Any]:
    """Columns read when a cell starts, before the cap: the device's free and total memory and,
    on an accelerator only, its provenance (a CPU cell calls no accelerator API)."""
    from gam_bench.measure import memory, provenance

    columns = memory.device_memory_at_start(device)
    if device.type != "cpu":
        columns.update(provenance.accelerator_provenance(device))
    return columns


def peak_columns(meter: Any) -> dict[str, Any]:
    """The cell's peak memory: `peak_mem_bytes` and `mem_source` (CPU: RSS high-water mark; an
    accelerator: the caching allocator's peak), and on CPU the same figure as `peak_rss_bytes`."""
    peak = meter.peak_bytes()
    columns = {"peak_mem_bytes": peak, "mem_source": meter.source}
    if not meter.on_accelerator:
        columns["peak_rss_bytes"] = peak
    return columns


def _describe(exc: BaseException) -> str:
    """'Type: message' plus the innermost frames of the traceback, bounded in length."""
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    where = " <- ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in reversed(frames))
    text = f"{type(exc).__name__}: {exc}".strip()
    if where:
        text += f" [at {where}]"
    return text[:_MAX_ERROR_CHARS]
