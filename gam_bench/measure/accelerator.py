"""Thin, device-generic calls on one accelerator device (cuda, xpu, ...), for the measure layer.

Every call takes the cell's own device and resolves it to an indexed device first: several
torch calls refuse an index-less `torch.device("cuda")` (e.g.
`torch.cuda.set_per_process_memory_fraction` raises ValueError through `_get_device_index`).
`torch.accelerator` is used where this torch has the call; its memory calls (memory_allocated,
max_memory_allocated, reset_peak_memory_stats, empty_cache: torch 2.8; get_memory_info:
newer) fall back to the device module (`torch.cuda`, `torch.xpu`), which has had them for
years. Nothing here touches a device other than the one passed in, and nothing here runs
for a CPU device (callers branch on `device.type == "cpu"` first).
"""

from __future__ import annotations

import torch


def indexed(device: torch.device | str) -> torch.device:
    """`device` with an index: `cuda` -> `cuda:<current index>`; an indexed device as is."""
    device = torch.device(device)
    if device.type == "cpu" or device.index is not None:
        return device
    return torch.device(device.type, torch.accelerator.current_device_index())


def _module(device: torch.device):
    """The device's torch module (torch.cuda, torch.xpu, torch.mps, ...)."""
    return getattr(torch, device.type)


def _call(name: str, device: torch.device, *args):
    """torch.accelerator.<name>(device) if this torch has it, else torch.<type>.<name>(device)."""
    device = indexed(device)
    fn = getattr(torch.accelerator, name, None)
    if fn is None:
        fn = getattr(_module(device), name)
    return fn(device, *args)


def synchronize(device: torch.device | str) -> None:
    """Wait for the work queued on this one device."""
    torch.accelerator.synchronize(indexed(device))


def memory_allocated(device: torch.device | str) -> int:
    return int(_call("memory_allocated", device))


def max_memory_allocated(device: torch.device | str) -> int:
    return int(_call("max_memory_allocated", device))


def reset_peak_memory_stats(device: torch.device | str) -> None:
    _call("reset_peak_memory_stats", device)


def empty_cache(device: torch.device | str) -> None:
    """Release the caching allocator's unused blocks (torch.accelerator's call takes no device)."""
    fn = getattr(torch.accelerator, "empty_cache", None)
    if fn is None:
        fn = _module(indexed(device)).empty_cache
    fn()


def memory_info(device: torch.device | str) -> tuple[int, int]:
    """(free, total) bytes of the device, as the driver reports them (all processes)."""
    device = indexed(device)
    fn = getattr(torch.accelerator, "get_memory_info", None)
    if fn is None:
        fn = _module(device).mem_get_info
    free, total = fn(device)
    return int(free), int(total)


def set_memory_fraction(device: torch.device | str, fraction: float) -> None:
    """Cap this process's caching allocator at `fraction` of the device's total memory."""
    device = indexed(device)
    setter = getattr(_module(device), "set_per_process_memory_fraction", None)
    if setter is None:
        raise NotImplementedError(f"torch {torch.__version__} cannot cap memory on {device.type}")
    setter(float(min(1.0, max(0.0, fraction))), device)


def event(device: torch.device | str):
    """A timing event for this device's current stream (torch.Event; torch.cuda.Event before it)."""
    device = indexed(device)
    if hasattr(torch, "Event"):
        return torch.Event(device=device, enable_timing=True)
    return _module(device).Event(enable_timing=True)
