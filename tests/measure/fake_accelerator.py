"""A fake CUDA accelerator for CPU tests of the measure layer's accelerator branches.

`FakeCuda.install(monkeypatch)` replaces the torch.accelerator / torch.cuda / torch.Event calls
the measure layer makes. Each checks its arguments the way torch 2.13 does (read from
torch/accelerator/_utils.py and torch/cuda/memory.py):
- a torch.device or str of another type than "cuda" is a ValueError ("doesn't match the
  current accelerator");
- `torch.cuda.set_per_process_memory_fraction` needs an index (torch.device("cuda") is a
  ValueError "Expected a torch.device with a specified index or an integer"), a float
  fraction (TypeError) in [0, 1] (ValueError);
- the torch.accelerator memory calls and `synchronize` accept None / an index-less device
  (the current index).
`devices` sets how many devices exist (an index beyond them is torch's "invalid device
ordinal"); the current device is index 0. It records every synchronize (per device index),
the device of every event, the memory fraction, and whether anything "initialised" the
device (any call but the availability checks), like torch.cuda.is_initialized.
Tensors stay on the CPU; memory numbers are whatever the test sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

GiB = 2**30


def _index(device, optional: bool) -> int:
    """torch.accelerator._utils._get_device_index, for an accelerator of type cuda at index 0."""
    if isinstance(device, bool) or (device is not None and not isinstance(device, (int, str, torch.device))):
        raise TypeError(f"unsupported device {device!r}")
    if isinstance(device, int):
        return device
    if isinstance(device, str):
        device = torch.device(device)
    index = None
    if isinstance(device, torch.device):
        if device.type != "cuda":
            raise ValueError(f"{device.type} doesn't match the current accelerator cuda.")
        index = device.index
    if index is None:
        if not optional:
            raise ValueError(f"Expected a torch.device with a specified index or an integer, but got:{device}")
        return 0
    return index


@dataclass
class FakeEvent:
    fake: FakeCuda
    device: torch.device
    time_ms: float | None = None

    def record(self, stream=None) -> None:
        self.fake.initialized = True
        self.fake.clock_ms += 1.5  # every recorded event is 1.5 ms after the one before
        self.time_ms = self.fake.clock_ms

    def elapsed_time(self, end: FakeEvent) -> float:
        if self.time_ms is None or end.time_ms is None:
            raise RuntimeError("event not recorded")
        return end.time_ms - self.time_ms


@dataclass
class FakeCuda:
    devices: int = 1  # cuda:0 .. cuda:<devices-1> exist; the current device is cuda:0
    total: int = 80 * GiB
    free: int = 70 * GiB
    allocated: int = 0
    peak: int = 0
    fraction: float | None = None
    initialized: bool = False
    clock_ms: float = 0.0
    syncs: list[int] = field(default_factory=list)
    event_devices: list[int] = field(default_factory=list)  # the device index of every event made
    free_readings: list[int] = field(default_factory=list)  # if set, mem_get_info pops these first

    def _touch(self, device, optional: bool = True) -> int:
        index = _index(device, optional)
        if not 0 <= index < self.devices:
            raise RuntimeError(f"CUDA error: invalid device ordinal {index}")
        self.initialized = True
        return index

    # torch.accelerator
    def synchronize(self, device=None, /) -> None:
        self.syncs.append(self._touch(device))

    def memory_allocated(self, device=None, /) -> int:
        self._touch(device)
        return self.allocated

    def max_memory_allocated(self, device=None, /) -> int:
        self._touch(device)
        return self.peak

    def reset_peak_memory_stats(self, device=None, /) -> None:
        self._touch(device)
        self.peak = self.allocated

    def empty_cache(self) -> None:
        pass

    def get_memory_info(self, device=None, /) -> tuple[int, int]:
        self._touch(device)
        if self.free_readings:
            self.free = self.free_readings.pop(0)
        return self.free, self.total

    # torch.cuda
    def set_per_process_memory_fraction(self, fraction, device=None) -> None:
        index = self._touch(device if device is not None else 0, optional=False)
        del index
        if not isinstance(fraction, float):
            raise TypeError("Invalid type for fraction argument, must be `float`")
        if fraction < 0 or fraction > 1:
            raise ValueError(f"Invalid fraction value: {fraction}. Allowed range: 0~1")
        self.fraction = fraction

    def get_device_properties(self, device=None):
        self._touch(device)
        return type("Props", (), {"total_memory": self.total, "name": "Fake GPU"})()

    def get_device_name(self, device=None) -> str:
        self._touch(device)
        return "Fake GPU"

    def event(self, device=None, *, enable_timing: bool = False, **_):
        device = torch.device(device) if device is not None else torch.device("cuda", 0)
        if device.type != "cuda":
            raise ValueError(f"{device.type} doesn't match the current accelerator cuda.")
        if not 0 <= (device.index or 0) < self.devices:
            raise RuntimeError(f"CUDA error: invalid device ordinal {device.index}")
        self.event_devices.append(device.index if device.index is not None else 0)
        return FakeEvent(self, device)

    def install(self, monkeypatch) -> FakeCuda:
        # torch._dynamo (imported by the first dispatch mode, e.g. a counted step) subclasses
        # torch.Event at import time: import it before torch.Event is replaced by a function.
        import torch._dynamo.device_interface  # noqa: F401

        acc = torch.accelerator
        monkeypatch.setattr(acc, "is_available", lambda: True)
        monkeypatch.setattr(acc, "current_accelerator", lambda check_available=False: torch.device("cuda"))
        monkeypatch.setattr(acc, "current_device_index", lambda: 0)
        monkeypatch.setattr(acc, "synchronize", self.synchronize)
        for name in ("memory_allocated", "max_memory_allocated", "reset_peak_memory_stats", "get_memory_info"):
            monkeypatch.setattr(acc, name, getattr(self, name), raising=False)
        monkeypatch.setattr(acc, "empty_cache", self.empty_cache, raising=False)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_initialized", lambda: self.initialized)
        monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", self.set_per_process_memory_fraction)
        monkeypatch.setattr(torch.cuda, "get_device_properties", self.get_device_properties)
        monkeypatch.setattr(torch.cuda, "get_device_name", self.get_device_name)
        monkeypatch.setattr(torch.cuda, "mem_get_info", self.get_memory_info)
        monkeypatch.setattr(torch.cuda, "synchronize", self.synchronize)
        monkeypatch.setattr(torch, "Event", self.event)
        return self
