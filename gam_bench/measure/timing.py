"""Wall time of repeated steps, synchronising the cell's own device around every timed step.

The host clock is `timeit.default_timer` (perf_counter, monotonic). On an accelerator the
cell's device (and only it: `torch.utils.benchmark`'s clock synchronises whatever
accelerator is present, so a CPU cell on a GPU machine would create a CUDA context and pay
a sync per step) is synchronised before and after each step, and each step is also timed
with a pair of device events on the current stream (`device_samples_ms`: kernel time as
the device saw it, without host launch gaps at the ends). On CPU nothing is synchronised
and `device_samples_ms` is None.

Each timed step is timed on its own so every repeat is kept; the step function itself sets
gradients to None before running (see gam_bench.tasks.throughput), so gradient accumulation
is never timed.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from gam_bench.measure import accelerator


@dataclass(frozen=True)
class Timing:
    """Per-step times in milliseconds, in the order they ran: host clock (synced) and, on an
    accelerator, device events (None on CPU)."""

    samples_ms: list[float]
    device_samples_ms: list[float] | None = None

    @property
    def median_ms(self) -> float:
        return float(np.median(self.samples_ms))

    @property
    def q25_ms(self) -> float:
        return float(np.percentile(self.samples_ms, 25))

    @property
    def q75_ms(self) -> float:
        return float(np.percentile(self.samples_ms, 75))

    @property
    def device_median_ms(self) -> float | None:
        return float(np.median(self.device_samples_ms)) if self.device_samples_ms else None


def _sync(device: torch.device) -> None:
    if device.type != "cpu":
        accelerator.synchronize(device)


def _cell_device(device: torch.device | str | None) -> torch.device:
    """The device to synchronise. None (callers not yet passing their cell's device): the
    accelerator if this process has already initialised it (a cell on it did), else CPU, so a
    CPU cell never creates an accelerator context."""
    if device is not None:
        return torch.device(device)
    current = torch.accelerator.current_accelerator()
    module = getattr(torch, current.type, None) if current is not None else None
    if module is not None and getattr(module, "is_initialized", lambda: False)():
        return accelerator.indexed(current)
    return torch.device("cpu")


def warm_up(step: Callable[[], object], n: int, device: torch.device | str | None = None) -> None:
    """Run `step` n times untimed, then wait for the cell's device."""
    for _ in range(n):
        step()
    _sync(_cell_device(device))


def time_steps(
    step: Callable[[], object],
    repeats: int,
    min_run_time_s: float = 0.0,
    max_repeats: int = 1000,
    device: torch.device | str | None = None,
) -> Timing:
    """Time `step` at least `repeats` times and until `min_run_time_s` of timed work (<= max_repeats).

    `device` is the cell's device (see `_cell_device` for None)."""
    device = _cell_device(device)
    on_accelerator = device.type != "cpu"
    samples: list[float] = []
    events: list[tuple[object, object]] = []
    total = 0.0
    while len(samples) < max_repeats and (len(samples) < repeats or total < min_run_time_s):
        _sync(device)
        if on_accelerator:
            begin, end = accelerator.event(device), accelerator.event(device)
            begin.record()
        start = timeit.default_timer()
        step()
        if on_accelerator:
            end.record()
            events.append((begin, end))
        _sync(device)
        elapsed = timeit.default_timer() - start
        samples.append(float(elapsed * 1e3))
        total += elapsed
    device_samples = [float(begin.elapsed_time(end)) for begin, end in events] if on_accelerator else None
    return Timing(samples, device_samples)
