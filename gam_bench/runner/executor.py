"""Executors: how the runner hands a cell to be measured and gets its outcome back.

The hand-off is deliberately small, so other executors (Ray, a batch queue) can slot in:

    executor = make_executor("local", device="cuda", plugins=["my_models"])
    outcome = executor.run(cell, on_progress=print)   # blocks; never raises for a cell failure
    executor.close()

`cell` is the JSON-able dict from `gam_bench.suite.expand`. `Outcome.status` is ok | oom |
error | timeout; for ok, `rows` holds the task's measurement columns (one dict per store
row); `env` holds the environment columns of the process that ran (or last ran) the cell.
An executor enforces `cell["limits"]["timeout_s"]` itself and must survive a cell killing
its process. Register new executors in `EXECUTORS` (name -> "module:Class"); the class is
built as `Class(device=..., plugins=[...], **options)`. An executor that can run several
cells at once also has `slots(cells) -> int` and a thread-safe `run` (see runner/parallel.py).
"""

from __future__ import annotations

import datetime as dt
import importlib
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gam_bench.errors import UserError

EXECUTORS = {
    "local": "gam_bench.runner.executor:LocalExecutor",
    "ray": "gam_bench.runner.ray_executor:RayExecutor",  # imports ray only when built
}
STARTUP_TIMEOUT_S = 300.0


@dataclass
class Outcome:
    """What came of one cell."""

    status: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    env: dict[str, Any] = field(default_factory=dict)
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    duration_s: float = 0.0


class Executor(Protocol):
    name: str

    def run(self, cell: dict[str, Any], on_progress: Callable[[str], None] | None = None) -> Outcome: ...

    def close(self) -> None: ...


def make_executor(name: str, *, device: str, plugins: list[str], **options: Any) -> Executor:
    """Build executor `name`; `options` (e.g. Ray's address, max_concurrency) go to its class."""
    if name not in EXECUTORS:
        raise UserError(f"--executor: unknown executor {name!r} (available: {', '.join(sorted(EXECUTORS))})")
    module, _, cls = EXECUTORS[name].partition(":")
    try:
        klass = getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        raise UserError(f"--executor: executor {name!r} is not available here: {exc}") from exc
    return klass(device=device, plugins=plugins, **options)


class _Worker:
    """One spawned worker process and our end of its pipe."""

    def __init__(self, ctx: Any, device: str, plugins: list[str]) -> None:
        from gam_bench.runner import worker

        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=worker.main, args=(child, device, plugins), daemon=True)
        self.process.start()
        child.close()
        self.env: dict[str, Any] = {}

    def wait_ready(self) -> str | None:
        """None when ready, else why the worker could not start."""
        if not self.conn.poll(STARTUP_TIMEOUT_S):
            return f"worker did not start within {STARTUP_TIMEOUT_S:.0f} s"
        try:
            kind, payload = self.conn.recv()
        except (EOFError, OSError):
            return f"worker died while starting ({self.exit_text()})"
        if kind != "ready":
            return f"worker failed to start: {payload}"
        self.env = payload
        return None

    def exit_text(self) -> str:
        self.process.join(timeout=10)
        code = self.process.exitcode
        if code is None:
            return "still running"
        if code < 0:
            name = signal.Signals(-code).name
            hint = " (possibly the kernel's OOM killer)" if -code == signal.SIGKILL else ""
            return f"killed by {name}{hint}, exit code {code}"
        return f"exit code {code}"

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)
        self.conn.close()


class LocalExecutor:
    """Runs cells in spawned worker processes on this machine: reused, replaced after a failure."""

    name = "local"

    def __init__(self, device: str, plugins: list[str]) -> None:
        self.device = device
        self.plugins = list(plugins)
        self._ctx = multiprocessing.get_context("spawn")
        self._worker: _Worker | None = None
        self._env: dict[str, Any] = {}

    def _ensure_worker(self) -> str | None:
        if self._worker is not None and self._worker.process.is_alive():
            return None
        self._discard()
        self._worker = _Worker(self._ctx, self.device, self.plugins)
        problem = self._worker.wait_ready()
        if problem:
            self._discard()
            return problem
        self._env = self._worker.env
        return None

    def run(self, cell: dict[str, Any], on_progress: Callable[[str], None] | None = None) -> Outcome:
        problem = self._ensure_worker()
        if problem:
            return Outcome("error", error=problem, env=dict(self._env))
        assert self._worker is not None
        started_at, t0, load = dt.datetime.now(dt.timezone.utc), time.perf_counter(), os.getloadavg()[0]
        self._worker.conn.send(cell)
        reply = self._await(cell["limits"]["timeout_s"], on_progress)
        if isinstance(reply, Outcome):  # timeout, or the worker died: no result came back
            reply.started_at, reply.duration_s = started_at, time.perf_counter() - t0
            reply.env = {**self._env, "threads": cell.get("threads"), "load_avg_1m": load}
            self._discard()
            return reply
        return self._from_result(reply)

    def _await(self, timeout_s: float, on_progress: Callable[[str], None] | None) -> dict[str, Any] | Outcome:
        """The worker's result dict, or a timeout / error Outcome when none comes."""
        worker = self._worker
        deadline = time.monotonic() + timeout_s
        while True:
            if not worker.conn.poll(max(0.0, deadline - time.monotonic())):
                return Outcome("timeout", error=f"cell ran past its timeout of {timeout_s:g} s; worker killed")
            try:
                kind, payload = worker.conn.recv()
            except (EOFError, OSError):
                return Outcome("error", error=f"worker died during the cell: {worker.exit_text()}")
            if kind == "progress":
                if on_progress:
                    on_progress(payload)
                continue
            return payload

    def _from_result(self, result: dict[str, Any]) -> Outcome:
        self._env = result["env"]
        if result["status"] != "ok":
            self._discard()  # the worker exits after a failure; make sure it is gone
        return Outcome(
            status=result["status"],
            rows=result["rows"],
            error=result["error"],
            env=result["env"],
            started_at=result["started_at"],
            duration_s=result["duration_s"],
        )

    def _discard(self) -> None:
        if self._worker is not None:
            self._worker.kill()
            self._worker = None

    def close(self) -> None:
        if self._worker is not None and self._worker.process.is_alive():
            try:
                self._worker.conn.send(None)
                self._worker.process.join(timeout=5)
            except (OSError, BrokenPipeError):
                pass
        self._discard()
