"""The Ray executor: `gam-bench run SUITE --executor ray [--address ...] [--max-concurrency N]`.

Each cell runs as a Ray actor task on a *cell worker*: a Ray actor that is the counterpart
of a LocalExecutor worker process. It asks Ray for one GPU and its node's CPU share (cuda
cells: the GPU nodes' CPUs per GPU, at most the cell's `threads`, at least 1) or for the
cell's `threads` CPUs (cpu cells), so no two cells ever share a device. It runs with as
many torch threads as CPUs Ray assigned to it (not the driver's core count, which the cell
carries: GPU workers sharing a node would oversubscribe it), and that is the `threads`
column. It starts up the way a local worker does (`worker.prepare`: plugins, priming) and
runs cells with the very same `worker.run_cell` (memory cap, task, peak memory), so the
per-cell logic exists once. After a failed GPU cell, the next worker waits (in `ready`, on
its own node and GPU) for the device memory to come back before it starts (executor.py).
The running of a cell (reuse, timeout, replacement after a failure, the error strings) is
the `executor.Executor` skeleton's, shared with the local executor; this module supplies
start, submit, poll and kill. A worker that dies (SIGKILL, node lost) gives an `error` row
naming Ray's reason. (Actors rather than plain tasks: Ray
reuses a plain task's worker process and offers no way to replace it after a failed cell,
whose sticky CUDA error or address-space cap would then leak into the next cell.)

The executor holds `slots(cells)` workers: what the cluster's alive nodes hold (per node:
GPUs, or CPUs // threads), at most `max_concurrency` (on a shared cluster set it to what is
free: a worker still waiting for resources after STARTUP_TIMEOUT_S gives an error row).
The runner runs that many budget groups side by side (`runner.parallel`); results come back
to the driver, which alone writes the store. Progress messages of a cell (perplexity
training) are polled from its worker.

`address`: None starts a fresh local Ray cluster for the sweep (shut down at the end);
"auto" joins the cluster of this node (`ray start --head` / `ray start --address`); a
"ray://host:port" address connects through Ray Client. A process that already called
`ray.init` keeps its connection.

Ray is an optional dependency: it is imported only when this executor is built.
"""

from __future__ import annotations

import collections
import os
import sys
from typing import Any

from gam_bench.cell import Cell
from gam_bench.errors import UserError
from gam_bench.runner.executor import STARTUP_TIMEOUT_S, Executor, Slot

INSTALL_HINT = "the ray executor needs Ray: pip install 'gam-bench[ray]'"
PING_TIMEOUT_S = 60.0
_MAX_REASON_CHARS = 600
_RAY_GUESSES = "Some common causes include"


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise UserError(INSTALL_HINT) from exc
    return ray


# ---------------------------------------------------------------- worker side (in the actor)


class _Notes:
    """The `ctx` of a cell on a Ray worker: `progress(message)` is kept for the driver to poll."""

    def __init__(self) -> None:
        self._messages: collections.deque[str] = collections.deque(maxlen=100)

    def progress(self, message: str) -> None:
        self._messages.append(str(message))

    def take(self) -> list[str]:
        out = []
        while self._messages:
            out.append(self._messages.popleft())
        return out


class CellWorker:
    """Body of the cell-worker actor (wrapped by `ray.remote` in the driver; two threads:
    one runs the cell, the other answers `notes` and `load` polls)."""

    def __init__(self, paths: list[str]) -> None:
        for path in paths:  # the driver's sys.path (plugins next to the suite file, tests)
            if path not in sys.path:
                sys.path.append(path)
        self._notes = _Notes()
        self.threads = assigned_threads()

    def ready(self, device: str, plugins: list[str], release_from: int | None = None) -> tuple[str, Any]:
        """("ready", environment columns) or ("fatal", why it cannot start). With `release_from`
        (free bytes before a failed cell), first wait for the device's memory to come back."""
        import torch

        from gam_bench.runner import worker

        try:
            torch.set_num_threads(self.threads)
            release = _wait_release(device, release_from) if release_from is not None else {}
            return "ready", {**worker.prepare(device, plugins), **release, "worker_pid": os.getpid()}
        except BaseException as exc:  # noqa: BLE001 - reported to the driver
            return "fatal", f"{type(exc).__name__}: {exc}"

    def run(self, cell: Cell) -> dict[str, Any]:
        from gam_bench.runner import worker

        return worker.run_cell(cell.model_copy(update={"threads": self.threads}), self._notes)

    def notes(self) -> list[str]:
        return self._notes.take()

    def load(self) -> float | None:
        try:
            return os.getloadavg()[0]
        except OSError:
            return None


def assigned_threads() -> int:
    """Torch threads for this Ray worker: the CPUs Ray assigned to it (at least 1)."""
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    return max(1, int(cpus))


def _wait_release(device: str, free_before: int) -> dict[str, Any]:
    """Wait until this worker's GPU has `free_before` bytes free again (read through torch, which
    sees the GPU Ray assigned; NVML numbers GPUs otherwise); the release columns."""
    import time

    import torch

    from gam_bench.measure import memory
    from gam_bench.runner.executor import RELEASE_TIMEOUT_S

    dev, t0 = torch.device(device), time.perf_counter()
    read = lambda: memory.device_memory_at_start(dev)["device_mem_free_bytes"]  # noqa: E731
    released, _free = memory.wait_for_release(free_before, read, timeout_s=RELEASE_TIMEOUT_S)
    return {"release_wait_s": time.perf_counter() - t0, "release_ok": released}


# ---------------------------------------------------------------- driver side


def resources(cell: Cell, cpus_per_gpu: float = 1.0) -> dict[str, float]:
    """What one cell's worker asks Ray for: one GPU and `cpus_per_gpu` CPUs, or the cell's threads as CPUs."""
    kind = cell.device.split(":")[0]
    if kind == "cpu":
        return {"CPU": float(cell.threads or 1)}
    if kind in ("cuda", "xpu"):
        return {"GPU": 1.0, "CPU": float(cpus_per_gpu)}
    raise UserError(f"--executor ray: device {cell.device!r} is not supported (use cpu or cuda)")


def cpus_per_gpu(nodes: list[dict[str, Any]], threads: int | None) -> float:
    """A GPU worker's CPU share: the fewest CPUs per GPU over the alive GPU nodes (ray.nodes()),
    at most `threads` (the cell's), at least 1."""
    shares = [
        node["Resources"].get("CPU", 0.0) // node["Resources"]["GPU"]
        for node in nodes
        if node.get("Alive", True) and node.get("Resources", {}).get("GPU", 0.0) >= 1
    ]
    share = min(shares) if shares else 1.0
    return float(max(1, min(int(share), threads or int(share))))


def capacity(nodes: list[dict[str, Any]], request: dict[str, float]) -> int:
    """How many workers asking `request` the alive `nodes` (ray.nodes()) hold at once."""
    total = 0
    for node in nodes:
        if not node.get("Alive", True):
            continue
        have = node.get("Resources", {})
        total += min(int(have.get(name, 0.0) // amount) for name, amount in request.items())
    return total


def death_reason(exc: BaseException) -> str:
    """Ray's one-paragraph reason why an actor died, with the pid and node it ran on."""
    lines = str(exc).splitlines() or [type(exc).__name__]
    facts = dict(line.strip().split(": ", 1) for line in lines if line.startswith("\t") and ": " in line)
    text = " ".join(line.strip() for line in lines[1:] if not line.startswith("\t")) or lines[0]
    if _RAY_GUESSES in text:  # Ray's list of usual suspects: keep it to ours
        text = text.split(_RAY_GUESSES)[0] + "(killed by a signal, possibly the kernel's OOM killer)"
    where = ", ".join(f"{k} {facts[k]}" for k in ("pid", "ip") if k in facts)
    return (f"{text} [{where}]" if where else text)[:_MAX_REASON_CHARS]


class RayExecutor(Executor):
    """Runs cells on Ray cell-worker actors; several cells at once (see `slots`)."""

    name = "ray"

    def __init__(
        self, device: str, plugins: list[str], address: str | None = None, max_concurrency: int | None = None
    ) -> None:
        if max_concurrency is not None and max_concurrency < 1:
            raise UserError(f"--max-concurrency: must be at least 1, got {max_concurrency}")
        self.ray = import_ray()
        self.max_concurrency = max_concurrency
        self._owns_ray = _connect(self.ray, address)
        self._worker_cls = self.ray.remote(max_concurrency=2)(CellWorker)
        self._cpus_per_gpu = 1.0
        super().__init__(device, plugins)

    def slots(self, cells: list[Cell]) -> int:
        """Cells this executor runs at once for `cells`: what the cluster holds, at most max_concurrency."""
        if not cells:
            return 1
        nodes = self.ray.nodes()
        self._cpus_per_gpu = cpus_per_gpu(nodes, max(c.threads or 1 for c in cells))
        request = _largest(resources(c, self._cpus_per_gpu) for c in cells)
        room = capacity(nodes, request)
        if room == 0:
            asked = " and ".join(f"{v:g} {k}" for k, v in request.items())
            hint = " (set threads: in the suite)" if "GPU" not in request else ""
            raise UserError(f"--executor ray: no node of the Ray cluster has {asked} for one cell{hint}")
        count = min(room, self.max_concurrency or room)
        self.resize(count)
        return count

    def start(self, slot: Slot, cell: Cell) -> tuple[str, Any]:
        request = resources(cell, self._cpus_per_gpu)
        paths = [p for p in sys.path if p and os.path.isdir(p)]
        options = {"num_cpus": request.get("CPU", 0.0), "num_gpus": request.get("GPU", 0.0)}
        slot.worker, slot.request = self._worker_cls.options(**options).remote(paths), request
        ref = slot.worker.ready.remote(self.device, self.plugins, slot.release_from)
        slot.release_from = None
        if not self.ray.wait([ref], timeout=STARTUP_TIMEOUT_S)[0]:
            return "late", None
        try:
            kind, payload = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            return "died", death_reason(exc)
        if kind == "ready":
            slot.pid = payload.pop("worker_pid", None)
            if "release_ok" in payload:
                slot.release = {k: payload.pop(k) for k in ("release_wait_s", "release_ok")}
        return kind, payload

    def threads(self, slot: Slot, cell: Cell) -> int | None:
        """The worker's own torch threads (its assigned CPUs), as its ready environment says."""
        return slot.env.get("threads", cell.threads)

    def wait_release(self, slot: Slot, cell: Cell, free_before: int | None) -> None:
        """Left to the next worker, on its own node and GPU (see `CellWorker.ready`)."""
        slot.release_from = free_before
        return None

    def reusable(self, slot: Slot, cell: Cell) -> bool:
        """Same resources, and alive between cells (its node may be gone); notes its load."""
        if slot.request != resources(cell, self._cpus_per_gpu):
            return False
        try:
            slot.load = self.ray.get(slot.worker.load.remote(), timeout=PING_TIMEOUT_S)
        except self.ray.exceptions.RayError:
            return False
        return True

    def load(self, slot: Slot) -> float | None:
        return slot.load if slot.load is not None else slot.env.get("load_avg_1m")

    def submit(self, slot: Slot, cell: Cell) -> Any:
        actor = slot.worker  # close() may clear the slot from another thread; keep our handle
        return actor, actor.run.remote(cell)

    def poll(self, handle: Any, wait_s: float) -> tuple[list[str], tuple[str, Any] | None]:
        actor, ref = handle
        done = self.ray.wait([ref], timeout=wait_s)[0]
        try:
            notes = self.ray.get(actor.notes.remote(), timeout=PING_TIMEOUT_S)
        except self.ray.exceptions.RayError:
            notes = []  # the worker is gone; the cell's own reply says why
        if not done:
            return notes, None
        try:
            return notes, ("result", self.ray.get(ref))
        except self.ray.exceptions.RayActorError as exc:
            return notes, ("died", death_reason(exc))
        except self.ray.exceptions.RayError as exc:
            return notes, ("error", f"Ray could not return the cell's result: {death_reason(exc)}")

    def kill(self, slot: Slot) -> None:
        try:
            self.ray.kill(slot.worker, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone, or the connection is
            pass

    def shutdown(self) -> None:
        """Disconnect if this executor connected."""
        if self._owns_ray and self.ray.is_initialized():
            self.ray.shutdown()


def _largest(requests: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for request in requests:
        for name, amount in request.items():
            out[name] = max(out.get(name, 0.0), amount)
    return out


def _connect(ray: Any, address: str | None) -> bool:
    """Connect to Ray (see the module docstring); True if this call did, so close() disconnects."""
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"log_to_driver": False}
    if address is None:
        options["include_dashboard"] = False  # a fresh local cluster for this sweep
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"at {address!r}" if address else "locally"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"--address: cannot start or reach a Ray cluster {where}: {first}") from None
    return True
