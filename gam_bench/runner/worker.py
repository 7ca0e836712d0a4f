"""The worker process: runs cells sent by a LocalExecutor over a pipe, one at a time.

Started with the "spawn" method (never fork: CUDA and threads do not survive a fork).
Protocol (tuples over a multiprocessing Connection):
  worker -> parent  ("ready", env) once started, or ("fatal", message) and exit
  parent -> worker  a `Cell`, or None to stop
  worker -> parent  ("progress", message) any number of times during a cell, then
                    ("result", result dict) with status ok | oom | error
After a failed cell the worker exits, so the next cell gets a fresh process.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import signal
import sys
import time
import traceback
from typing import Any

from gam_bench.cell import Cell

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
    """What a task may use besides its cell: `progress(message)` reports to the parent."""

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


def prepare(device: str, plugins: list[str]) -> dict[str, Any]:
    """Start-up of a worker process (local, or a Ray cell worker): import the plugins, prime
    the device; returns the environment columns. Raises if the worker cannot start."""
    from gam_bench.measure.environment import environment
    from gam_bench.suite import import_plugin

    for module in plugins:
        import_plugin(module)
    _prime(device)
    return environment(device)


def _prime(device: str) -> None:
    """Pay one-time costs (thread pools, autograd engine, lazy kernels) before any cell is timed."""
    import torch

    from gam_bench.measure.flops import count_flops

    layer = torch.nn.Linear(64, 64).to(device)
    x = torch.randn(4, 32, 64, device=device, requires_grad=True)  # (B, T, D)

    def step() -> None:
        layer(x).float().mean().backward()

    count_flops(step)
    for _ in range(3):
        step()


_PRIMED: set[str] = set()
_PRIME_SEQ_LEN = 16


def _prime_model(cell: Cell) -> None:
    """Once per worker and model setting: one throughput step at a tiny length, untimed, so
    that one-time costs of the model's ops (lazy kernel init, library scratch buffers) land
    in no cell's time or peak memory."""
    if cell.task != "throughput":
        return
    key = cell.group_key
    if key in _PRIMED:
        return
    from gam_bench.tasks import throughput

    measure = cell.measure.model_copy(update={"warmup": 0, "repeats": 1, "min_run_time_s": 0.0, "max_repeats": 1})
    # eager: a compile at the priming length would be a second compile nobody measures
    update = {"seq_len": min(cell.seq_len, _PRIME_SEQ_LEN), "measure": measure, "compile": "eager", "cuda_graph": False}
    throughput.run(cell.model_copy(update=update))
    _PRIMED.add(key)


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


def run_cell(cell: Cell, ctx: Any) -> dict[str, Any]:
    """Run one cell in this process; never raises (failures become a result)."""
    import torch

    from gam_bench.measure import memory
    from gam_bench.measure.environment import environment
    from gam_bench.tasks import TASKS

    started_at = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    device = torch.device(cell.device)
    env: dict[str, Any] = {}
    try:
        if cell.threads:
            torch.set_num_threads(cell.threads)
        env = environment(cell.device)
        limits = cell.limits
        # The cap first: priming runs model code, which must not escape the cap either.
        memory.apply_cap(device, memory.cap_bytes(limits.mem_cap_gb, limits.mem_cap_fraction, device))
        _prime_model(cell)
        meter = memory.PeakMemory(device)
        meter.start()
        rows = TASKS.get(cell.task)(cell, ctx)
        peak = meter.peak_bytes()
        for row in rows:
            row.setdefault("peak_mem_bytes", peak)
            row.setdefault("mem_source", meter.source)
        status, error = "ok", None
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a row
        rows, status, error = [], ("oom" if memory.is_oom(exc) else "error"), _describe(exc)
        del exc
    return {
        "status": status,
        "error": error,
        "rows": rows,
        "env": env or environment(cell.device),
        "started_at": started_at,
        "duration_s": time.perf_counter() - t0,
    }


def _describe(exc: BaseException) -> str:
    """'Type: message' plus the innermost frames of the traceback, bounded in length."""
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    where = " <- ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in reversed(frames))
    text = f"{type(exc).__name__}: {exc}".strip()
    if where:
        text += f" [at {where}]"
    return text[:_MAX_ERROR_CHARS]
