"""Executors: how the runner hands a cell to be measured and gets its outcome back.

    executor = make_executor("local", device="cuda", plugins=["my_models"])
    executor.slots(cells)                             # how many cells it runs at once
    outcome = executor.run(cell, on_progress=print)   # blocks; never raises for a cell failure
    executor.close()

`Executor` (the base, after asv's Spawner / ForkServer) owns `run`: take a free slot, make
sure it has a live worker (starting one if needed), send the cell, wait for the reply with
the cell's timeout while relaying progress messages, and turn the reply (or its absence)
into an `Outcome`, with the one set of timeout and error strings. A worker is reused from
cell to cell and killed after a timeout or any failed cell. `run` is thread-safe: the
runner calls it from one thread per slot (runner/parallel.py).

A subclass supplies only how its workers live:
    start(slot, cell) -> (kind, payload)   a new worker in `slot.worker`; ("ready", env),
                                           ("fatal", why), ("died", reason) or ("late", None)
    reusable(slot, cell) -> bool           can the slot's live worker take this cell?
    load(slot) -> float | None             the worker machine's 1-minute load average
    submit(slot, cell) -> handle           send the cell to the slot's worker
    poll(handle, wait_s) -> (notes, reply) progress messages, and None while the cell runs,
                                           else ("result", result dict), ("died", reason)
                                           or ("error", message)
    kill(slot)                             end the slot's worker (gently if the slot is idle)
and, optionally, `slots(cells)` (default: 1, and the base's pool holds one slot; call
`resize(n)` for more), `prestart()` (start a worker before the first cell, while the parent
plans the sweep), `threads(slot, cell)` (the CPU threads the worker runs the cell with;
default the cell's), `wait_release(slot, cell, free_before)` and `shutdown()` (after close).

`run` runs a cell once, on one worker. `measure.processes` > 1 is the runner's: it makes that
many passes over the sweep, each in fresh workers (`resize`), and merges a cell's outcomes
(runner/processes.py).

Release: after a timeout, a dead worker or any failed cell on an accelerator, the
slot's worker is killed and `wait_release` waits (bounded, RELEASE_TIMEOUT_S) until the
device's free memory is back near its level at the failed cell's start
(`device_mem_free_bytes` of its environment) before the next worker starts, so memory the
old worker still holds does not turn the next cell into a false `oom`. (Local: read in the
parent through NVML / nvidia-smi, never a CUDA context; where neither reads it, only the
old worker's exit is waited for. Ray: in the next worker, on its own GPU.) The next outcome of
the slot carries `release_wait_s` and `release_ok`; when the memory did not come back, a
failed next cell's error says so.

`Outcome.status` is ok | oom | error | timeout; for ok, `rows` holds the task's measurement
columns (one dict per store row); `env` holds the environment columns of the process that
ran (or last ran) the cell. Register new executors in `EXECUTORS` (name -> "module:Class");
the class is built as `Class(device=..., plugins=[...], **options)`. The strategies:
`LocalExecutor` (runner/local.py: worker processes here) and `RayExecutor` (ray_executor.py).
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gam_bench.cell import Cell
from gam_bench.errors import UserError
from gam_bench.registry import Registry

EXECUTORS: Registry[type] = Registry(
    "executor",
    {
        "local": "gam_bench.runner.local:LocalExecutor",
        "ray": "gam_bench.runner.ray_executor:RayExecutor",  # imports ray only when built
    },
)
STARTUP_TIMEOUT_S = 300.0
RELEASE_TIMEOUT_S = 30.0  # how long a slot waits for a failed accelerator worker's memory
POLL_S = 1.0  # how often a waiting cell checks its timeout and the stop flag
_NOT_RELEASED = "the previous worker's device memory was not released before this cell: an oom here may be false"


@dataclass
class Outcome:
    """What came of one cell."""

    status: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    env: dict[str, Any] = field(default_factory=dict)
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    duration_s: float = 0.0


@dataclass
class Slot:
    """One place to run a cell: its worker (None until needed), what it was started for, its
    environment columns, its last measured load, and whether a cell is running on it."""

    worker: Any = None
    request: Any = None
    env: dict[str, Any] = field(default_factory=dict)
    load: float | None = None
    busy: bool = False
    early: bool = False  # `worker` was started by prestart() and has not reported ready yet
    pid: int | None = None  # the worker's process id
    release: dict[str, Any] | None = None  # release_wait_s / release_ok for the next outcome
    release_from: int | None = None  # free bytes a deferred wait_release waits for (Ray: in the next worker)


def make_executor(name: str, *, device: str, plugins: list[str], **options: Any) -> Executor:
    """Build executor `name`; `options` (e.g. Ray's address, max_concurrency) go to its class."""
    return executor_class(name)(device=device, plugins=plugins, **options)


def executor_class(name: str) -> type:
    try:
        return EXECUTORS.get(name)
    except ImportError as exc:
        raise UserError(f"--executor: executor {name!r} is not available here: {exc}") from exc
    except UserError as exc:
        raise UserError(f"--executor: {exc}") from None


class Executor(ABC):
    """The skeleton every executor shares; see the module docstring."""

    name = "?"
    starts_early = False  # True: the runner builds it before planning the sweep and calls prestart()

    def __init__(self, device: str, plugins: list[str]) -> None:
        self.device = device
        self.plugins = list(plugins)
        self._closed = threading.Event()
        self._all: list[Slot] = []
        self._idle: queue.Queue[Slot] = queue.Queue()
        self.resize(1)

    # -- the protocol a subclass supplies

    def slots(self, cells: list[Cell]) -> int:
        """How many cells this executor runs at once for `cells`."""
        return 1

    @abstractmethod
    def start(self, slot: Slot, cell: Cell) -> tuple[str, Any]: ...

    @abstractmethod
    def reusable(self, slot: Slot, cell: Cell) -> bool: ...

    @abstractmethod
    def load(self, slot: Slot) -> float | None: ...

    @abstractmethod
    def submit(self, slot: Slot, cell: Cell) -> Any: ...

    @abstractmethod
    def poll(self, handle: Any, wait_s: float) -> tuple[list[str], tuple[str, Any] | None]: ...

    @abstractmethod
    def kill(self, slot: Slot) -> None: ...

    def shutdown(self) -> None:  # noqa: B027 - optional hook
        """After every worker is gone (close)."""

    def prestart(self) -> None:  # noqa: B027 - optional hook
        """Start a worker for the first cell now (its `start` then waits for it to be ready)."""

    def threads(self, slot: Slot, cell: Cell) -> int | None:
        """CPU threads the slot's worker runs `cell` with."""
        return cell.threads

    def wait_release(self, slot: Slot, cell: Cell, free_before: int | None) -> dict[str, Any] | None:
        """After the slot's worker for a failed accelerator `cell` was killed: wait until its device
        memory is released; the columns release_wait_s / release_ok, or None where the wait is
        left to the next worker (set `slot.release_from`)."""
        return None

    # -- what the base owns

    def resize(self, count: int) -> None:
        """A fresh pool of `count` slots (their workers killed); only between sweeps. What an old
        slot still owes its next cell after a failed accelerator cell (`release`: the wait's
        columns; `release_from`: a wait left to the next worker) moves to a new slot, so a pass or
        search probe after a failure still waits for, or reports, the device memory's release."""
        owed = []
        for slot in self._all:
            self._discard(slot)
            if slot.release is not None or slot.release_from is not None:
                owed.append((slot.release, slot.release_from))
        self._all = [Slot() for _ in range(count)]
        for slot, (release, release_from) in zip(self._all, owed):
            slot.release, slot.release_from = release, release_from
        self._idle = queue.Queue()
        for slot in self._all:
            self._idle.put(slot)

    def run(self, cell: Cell, on_progress: Callable[[str], None] | None = None) -> Outcome:
        slot = self._idle.get()
        slot.busy = True
        try:
            return self._run_once(slot, cell, on_progress)
        finally:
            slot.busy = False
            self._idle.put(slot)

    def _run_once(self, slot: Slot, cell: Cell, on_progress: Callable[[str], None] | None) -> Outcome:
        """The cell on the slot's worker, with the note of the slot's last release wait."""
        release, slot.release = slot.release, None  # of the wait before this cell (a failure now sets the next)
        outcome = self._run_on(slot, cell, on_progress)
        if release:
            outcome.env = {**outcome.env, **release}
            if not release["release_ok"] and outcome.status != "ok":
                outcome.error = f"{outcome.error} ({_NOT_RELEASED})"
        return outcome

    def _run_on(self, slot: Slot, cell: Cell, on_progress: Callable[[str], None] | None) -> Outcome:
        problem = self._ready(slot, cell)
        if problem:
            return Outcome("error", error=problem, env={**slot.env, "threads": self.threads(slot, cell)})
        load, threads, pid = self.load(slot), self.threads(slot, cell), slot.pid
        started_at, t0 = dt.datetime.now(dt.timezone.utc), time.perf_counter()
        reply = self._await(self.submit(slot, cell), cell.limits.timeout_s, on_progress)
        if isinstance(reply, Outcome):  # timeout, or the worker died: no result came back
            reply.started_at, reply.duration_s = started_at, time.perf_counter() - t0
            reply.env = {**slot.env, "threads": threads, "load_avg_1m": load, "worker_pid": pid}
            self._discard(slot, failed=cell, free_before=slot.env.get("device_mem_free_bytes"))
            return reply
        before, slot.env = slot.env, reply["env"]
        if reply["status"] != "ok":  # a fresh worker after any failure
            free_before = reply["env"].get("device_mem_free_bytes", before.get("device_mem_free_bytes"))
            self._discard(slot, failed=cell, free_before=free_before)
        keys = ("status", "rows", "error", "started_at", "duration_s")
        env = {**reply["env"], "threads": threads, "worker_pid": pid}
        return Outcome(env=env, **{key: reply[key] for key in keys})

    def _ready(self, slot: Slot, cell: Cell) -> str | None:
        """None once `slot` has a live worker for `cell`; else why it has none."""
        if slot.worker is not None and not slot.early and self.reusable(slot, cell):
            return None
        if not slot.early:
            self._discard(slot)
        if self._closed.is_set():
            return "the sweep was stopped"
        kind, payload = self.start(slot, cell)  # an early worker: waits for its ready message
        slot.early = False
        if kind == "ready":
            slot.env = payload
            return None
        self._discard(slot)
        if kind == "late":
            return f"worker did not start within {STARTUP_TIMEOUT_S:.0f} s"
        if kind == "died":
            return f"worker died while starting ({payload})"
        return f"worker failed to start: {payload}"

    def _await(
        self, handle: Any, timeout_s: float, on_progress: Callable[[str], None] | None
    ) -> dict[str, Any] | Outcome:
        """The worker's result dict, or a timeout / error Outcome when none comes."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            notes, reply = self.poll(handle, max(0.0, min(POLL_S, left)))
            for message in notes:
                if on_progress:
                    on_progress(message)
            if reply is not None:
                kind, payload = reply
                if kind == "result":
                    return payload
                if kind == "died":
                    return Outcome("error", error=f"worker died during the cell: {payload}")
                return Outcome("error", error=payload)
            if self._closed.is_set():
                return Outcome("error", error="the sweep was stopped during the cell")
            if left <= 0:
                return Outcome("timeout", error=f"cell ran past its timeout of {timeout_s:g} s; worker killed")

    def _discard(self, slot: Slot, failed: Cell | None = None, free_before: int | None = None) -> None:
        """End the slot's worker; after a `failed` accelerator cell, wait for its memory (`wait_release`)."""
        if slot.worker is not None:
            self.kill(slot)
            if failed is not None and failed.device.split(":")[0] != "cpu":
                slot.release = self.wait_release(slot, failed, free_before)
        slot.worker, slot.load, slot.pid, slot.early = None, None, None, False

    def close(self) -> None:
        """End every worker (cells in flight end as errors the runner drops), then `shutdown`."""
        if self._closed.is_set():
            return
        self._closed.set()
        for slot in self._all:
            self._discard(slot)
        deadline = time.monotonic() + 5 * POLL_S  # let cells in flight notice and hand back their slots
        while self._idle.qsize() < len(self._all) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.shutdown()
