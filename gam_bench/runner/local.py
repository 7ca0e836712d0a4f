"""The local executor: cells run in spawned worker processes on this machine (runner/worker.py).

`LocalExecutor` is the `Executor` skeleton's (runner/executor.py) local strategy: one
worker process per slot, started with "spawn" (through a launcher script when one is given,
e.g. valgrind for the counting pass: measure/valgrind.py), reused while its cells succeed and
replaced after any failure; `_Worker` is its handle on one process and its pipe. After a
failed accelerator cell the next cell waits until that worker's device memory is back
(`wait_release`, NVML's view of the device: `nvml_index`).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from gam_bench.cell import Cell
from gam_bench.runner import executor as skeleton
from gam_bench.runner.executor import STARTUP_TIMEOUT_S, Executor, Slot

LAUNCHED_STARTUP_TIMEOUT_S = 1800.0  # a worker started through a launcher (valgrind: torch imports 50x slower)


def nvml_index(device: str) -> int | None:
    """NVML's number of this process's CUDA `device` ("cuda", "cuda:1"), through
    CUDA_VISIBLE_DEVICES when it lists indices; None for other devices or GPU UUIDs there."""
    kind, _, index = device.partition(":")
    if kind != "cuda":
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    position = int(index or 0)
    if visible is None:
        return position
    listed = [v.strip() for v in visible.split(",") if v.strip()]
    if position >= len(listed) or not listed[position].isdigit():
        return None
    return int(listed[position])


def _wait_for_release(free_before: int, read: Callable[[], int], alive: Callable[[], bool]) -> bool:
    from gam_bench.measure import memory  # imports torch: only after a failed accelerator cell

    released, _free = memory.wait_for_release(
        free_before, read, process_alive=alive, timeout_s=skeleton.RELEASE_TIMEOUT_S
    )
    return released


_LAUNCH_LOCK = threading.Lock()  # the spawn executable is process-wide: one start at a time


def _start(process: Any, launcher: str | os.PathLike[str] | None) -> None:
    """Start a spawn `process`; through `launcher` (a script exec'ing the interpreter, e.g. under
    valgrind: measure/valgrind.py) instead of the interpreter when given. multiprocessing's spawn
    executable is process-wide, so it is swapped for this one start only, under a lock, after
    the resource tracker runs (which must not start through the launcher)."""
    from multiprocessing import resource_tracker, spawn

    resource_tracker.ensure_running()
    with _LAUNCH_LOCK:
        if launcher is None:
            process.start()
            return
        previous = spawn.get_executable()
        spawn.set_executable(os.fspath(launcher))
        try:
            process.start()
        finally:
            spawn.set_executable(previous)


class _Worker:
    """One spawned worker process and our end of its pipe."""

    def __init__(
        self, ctx: Any, device: str, plugins: list[str], launcher: str | os.PathLike[str] | None = None
    ) -> None:
        from gam_bench.runner import worker

        self.conn, child = ctx.Pipe()
        self._close_lock = threading.Lock()
        self._closed = False
        self.process = ctx.Process(target=worker.main, args=(child, device, plugins), daemon=True)
        _start(self.process, launcher)
        child.close()

    def close(self) -> None:
        """Close our end of the pipe, once: on Ctrl-C the sweep's `close` and the thread of the
        cell in flight both end this worker, and a second close of the same descriptor fails
        (or, worse, closes a descriptor opened since)."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self.conn.close()

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


class LocalExecutor(Executor):
    """Runs cells in spawned worker processes on this machine (one at a time).

    `launcher`: when set, new workers start through that script instead of the interpreter
    (the runner's counting pass sets it to start them under valgrind: runner/counting.py)."""

    name = "local"
    starts_early = True  # the runner builds it before planning the sweep, and calls prestart()

    def __init__(self, device: str, plugins: list[str]) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self.launcher: str | os.PathLike[str] | None = None
        super().__init__(device, plugins)

    def prestart(self) -> None:
        """Spawn the first slot's worker now: it imports torch and primes while the parent plans."""
        slot = self._all[0]
        if slot.worker is None and not self._closed.is_set():
            slot.worker, slot.early = _Worker(self._ctx, self.device, self.plugins), True
            slot.pid = slot.worker.process.pid

    def start(self, slot: Slot, cell: Cell) -> tuple[str, Any]:
        if not slot.early:
            slot.worker = _Worker(self._ctx, self.device, self.plugins, self.launcher)
        worker = slot.worker
        slot.pid = worker.process.pid
        if not worker.conn.poll(STARTUP_TIMEOUT_S if self.launcher is None else LAUNCHED_STARTUP_TIMEOUT_S):
            return "late", None
        try:
            return worker.conn.recv()
        except (EOFError, OSError):
            return "died", worker.exit_text()

    def reusable(self, slot: Slot, cell: Cell) -> bool:
        return slot.worker.process.is_alive()

    def load(self, slot: Slot) -> float | None:
        return os.getloadavg()[0]

    def submit(self, slot: Slot, cell: Cell) -> Any:
        slot.worker.conn.send(cell)
        return slot.worker

    def poll(self, handle: _Worker, wait_s: float) -> tuple[list[str], tuple[str, Any] | None]:
        try:
            if not handle.conn.poll(wait_s):
                return [], None
            kind, payload = handle.conn.recv()
        except (EOFError, OSError, ValueError):  # the worker died, or close() ended it
            return [], ("died", handle.exit_text())
        if kind == "progress":
            return [payload], None
        return [], ("result", payload)

    def wait_release(self, slot: Slot, cell: Cell, free_before: int | None) -> dict[str, Any]:
        """Wait (in this process) until the killed worker has exited and the GPU's free memory, read
        through NVML / nvidia-smi, is back near `free_before`. Where those cannot read it (or no
        reading from before the cell exists), wait only for the exit: reading through torch would
        create a CUDA context here, which holds device memory for the rest of the sweep."""
        from gam_bench.measure import provenance

        process, t0 = slot.worker.process, time.perf_counter()
        index = nvml_index(cell.device)
        if free_before is None or index is None or provenance.nvml_memory_info(index) is None:
            free_before, read = 0, lambda: 0
        else:
            read = lambda: (provenance.nvml_memory_info(index) or (0, 0))[0]  # noqa: E731
        released = _wait_for_release(free_before, read, process.is_alive)
        return {"release_wait_s": time.perf_counter() - t0, "release_ok": released}

    def kill(self, slot: Slot) -> None:
        worker: _Worker | None = slot.worker  # read once: another thread may be ending it too
        if worker is None:
            return
        if not slot.busy and not slot.early and worker.process.is_alive():  # idle: ask it to stop
            try:
                worker.conn.send(None)
                worker.process.join(timeout=5)
            except (OSError, ValueError):
                pass
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(timeout=10)
        worker.close()
