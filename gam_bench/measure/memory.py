"""Peak memory of one cell, and the per-cell memory cap.

Peak (what `peak_mem_bytes` holds): the memory the cell added at its peak, above what the
worker held when the cell started.
- Accelerator (cuda, xpu, ...): the caching allocator's peak (`max_memory_allocated` after
  `reset_peak_memory_stats`, through torch.accelerator), minus what was allocated at the start.
  `mem_source` = "<device>_allocator".
- CPU (Linux): the worker's peak RSS during the cell. Writing "5" to /proc/self/clear_refs
  resets the kernel's high-water mark VmHWM to the current RSS; the peak is VmHWM minus the
  RSS at the reset. `mem_source` = "rss_hwm". So that memory freed by an earlier cell
  really leaves the process (and so cannot hide this cell's peak), the heap is trimmed
  first (glibc `malloc_trim(0)` returns free pages of every arena to the OS).
  Worker processes call `tune_malloc()` at start (the `malloc_tuned` column): glibc's
  mmap and trim thresholds at 1 GiB, so that a step's freed activations are reused from the
  heap instead of being unmapped and page-faulted in again next step (glibc's adaptive
  threshold otherwise moves between processes: per-process time levels). A low fixed
  threshold would do the opposite (every large tensor a fresh mmap: 1.5-2x slower steps).
  The explicit `malloc_trim(0)` before each cell still returns the free pages.
- Elsewhere: `ru_maxrss`, which cannot be reset (`mem_source` = "ru_maxrss_not_reset").

Cap: on CPU an address-space limit (RLIMIT_AS) of the worker's current size plus the cap,
so a runaway allocation fails with MemoryError / "can't allocate memory" (recorded as
`oom`) instead of waking the kernel's OOM killer. On an accelerator, the allocator's
per-process memory fraction, set on the cell's device with its index (`cuda` -> `cuda:0`).

The cap is a fraction of the device's total memory, not of what is free: memory still held
by a worker that was just killed would turn into false `oom` rows. `wait_for_release`
waits (bounded) until the device's free memory is back near its level before that worker
ran; `device_memory_at_start` records free and total memory with every row.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path

import torch

from gam_bench.measure import accelerator

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def total_ram_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name)
        _ = lib.malloc_trim  # glibc only: AttributeError elsewhere
        return lib
    except (OSError, AttributeError, TypeError):
        return None


_M_TRIM_THRESHOLD = -1  # glibc malloc.h
_M_MMAP_THRESHOLD = -3
MALLOC_THRESHOLD_BYTES = 2**30


def tune_malloc(threshold: int = MALLOC_THRESHOLD_BYTES) -> bool:
    """glibc only: mallopt(M_MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD) at `threshold`
    (fixed, so glibc's adaptive mmap threshold no longer moves). True when both were set;
    False elsewhere (not glibc) or when glibc refused a value (mallopt returned 0)."""
    lib = _libc()
    if lib is None or not hasattr(lib, "mallopt"):
        return False
    mmap_ok = lib.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(threshold))
    trim_ok = lib.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(threshold))
    return bool(mmap_ok) and bool(trim_ok)


def _trim_heap() -> None:
    gc.collect()
    lib = _libc()
    if lib is not None:
        lib.malloc_trim(0)


class PeakMemory:
    """Per-cell peak memory meter: `start()` before the cell, `peak_bytes()` after it."""

    def __init__(self, device: torch.device) -> None:
        self.device = accelerator.indexed(device)
        self.on_accelerator = device.type != "cpu"
        self._baseline = 0
        self.source = self._pick_source()

    def _pick_source(self) -> str:
        if self.on_accelerator:
            return f"{self.device.type}_allocator"
        if _CLEAR_REFS.exists() and _status_kib("VmHWM") is not None:
            return "rss_hwm"
        return "ru_maxrss_not_reset"

    def start(self) -> None:
        _trim_heap()
        if self.on_accelerator:
            accelerator.empty_cache(self.device)
            accelerator.reset_peak_memory_stats(self.device)
            self._baseline = accelerator.memory_allocated(self.device)
        elif self.source == "rss_hwm":
            _CLEAR_REFS.write_text("5")
            self._baseline = (_status_kib("VmRSS") or 0) * 1024
        else:
            self._baseline = 0

    def peak_bytes(self) -> int:
        if self.on_accelerator:
            accelerator.synchronize(self.device)
            return accelerator.max_memory_allocated(self.device) - self._baseline
        if self.source == "rss_hwm":
            return (_status_kib("VmHWM") or 0) * 1024 - self._baseline
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cap_bytes(mem_cap_gb: float | None, mem_cap_fraction: float, device: torch.device) -> int:
    """The cap in bytes: `mem_cap_gb` GiB, else the fraction of the device's memory."""
    if mem_cap_gb is not None:
        return int(mem_cap_gb * 2**30)
    if device.type == "cpu":
        return int(total_ram_bytes() * mem_cap_fraction)
    _free, total = accelerator.memory_info(device)
    return int(total * mem_cap_fraction)


def apply_cap(device: torch.device, cap: int) -> None:
    """Limit what the cell can allocate (see the module docstring)."""
    if device.type == "cpu":
        _cap_address_space(cap)
        return
    _free, total = accelerator.memory_info(device)
    accelerator.set_memory_fraction(device, cap / total)


def device_memory_at_start(device: torch.device) -> dict[str, int | None]:
    """The `device_mem_free_bytes` / `device_mem_total_bytes` columns: the device's free and
    total memory when the cell starts (all processes; RAM on CPU: MemAvailable)."""
    if device.type == "cpu":
        available = _meminfo_kib("MemAvailable")
        return {
            "device_mem_free_bytes": available * 1024 if available is not None else None,
            "device_mem_total_bytes": total_ram_bytes(),
        }
    free, total = accelerator.memory_info(device)
    return {"device_mem_free_bytes": free, "device_mem_total_bytes": total}


def wait_for_release(
    free_before: int,
    read_free: Callable[[], int],
    process_alive: Callable[[], bool] = lambda: False,
    timeout_s: float = 30.0,
    tolerance_bytes: int = 256 * 2**20,
    poll_s: float = 0.1,
) -> tuple[bool, int]:
    """After a worker died or was killed: poll `read_free()` (the device's free bytes) until it
    is back within `tolerance_bytes` of `free_before` (its level before that worker's cell)
    and `process_alive()` is False, or until `timeout_s`. Returns (released, free bytes last read).

    In the parent, pass `free_memory_reader(device)`: it reads through NVML / nvidia-smi where it
    can, so that waiting does not create a CUDA context in the parent.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        free = int(read_free())
        if free + tolerance_bytes >= free_before and not process_alive():
            return True, free
        if time.monotonic() >= deadline:
            return False, free
        time.sleep(poll_s)


def free_memory_reader(device: torch.device) -> Callable[[], int]:
    """A function returning the device's free bytes now: NVML (pynvml) or nvidia-smi for a CUDA
    device when either works (no CUDA context in the caller), else torch; MemAvailable on CPU."""
    if device.type == "cpu":
        return lambda: (_meminfo_kib("MemAvailable") or 0) * 1024
    if device.type == "cuda":
        from gam_bench.measure.provenance import nvml_memory_info

        index = device.index if device.index is not None else 0
        if nvml_memory_info(index) is not None:
            return lambda: nvml_memory_info(index)[0]
    return lambda: accelerator.memory_info(device)[0]


def _meminfo_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _cap_address_space(cap: int) -> None:
    size_kib = _status_kib("VmSize")
    if size_kib is None:
        return  # no /proc: leave the limit alone
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = size_kib * 1024 + cap
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def is_oom(exc: BaseException) -> bool:
    """True for out-of-memory failures: torch.OutOfMemoryError, MemoryError, CPU allocator failures."""
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "can't allocate memory" in text or "out of memory" in text.lower() or "std::bad_alloc" in text
    )
