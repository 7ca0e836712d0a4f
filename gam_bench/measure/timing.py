"""Wall time of repeated steps, synchronising the device around every timed step.

The clock is `torch.utils.benchmark`'s `timer`: it synchronises the current accelerator
(torch.accelerator) and reads the monotonic `timeit.default_timer` (perf_counter). Each
timed step is timed on its own so every repeat is kept; the step function itself sets
gradients to None before running (see gam_bench.tasks.throughput), so gradient
accumulation is never timed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from torch.utils.benchmark.utils.timer import timer as synced_clock


@dataclass(frozen=True)
class Timing:
    """Per-step times in milliseconds, in the order they ran."""

    samples_ms: list[float]

    @property
    def median_ms(self) -> float:
        return float(np.median(self.samples_ms))

    @property
    def q25_ms(self) -> float:
        return float(np.percentile(self.samples_ms, 25))

    @property
    def q75_ms(self) -> float:
        return float(np.percentile(self.samples_ms, 75))


def warm_up(step: Callable[[], object], n: int) -> None:
    """Run `step` n times untimed, then wait for the device."""
    for _ in range(n):
        step()
    synced_clock()


def time_steps(
    step: Callable[[], object],
    repeats: int,
    min_run_time_s: float = 0.0,
    max_repeats: int = 1000,
) -> Timing:
    """Time `step` at least `repeats` times and until `min_run_time_s` of timed work (<= max_repeats)."""
    samples: list[float] = []
    total = 0.0
    while len(samples) < max_repeats and (len(samples) < repeats or total < min_run_time_s):
        start = synced_clock()
        step()
        elapsed = synced_clock() - start
        samples.append(float(elapsed * 1e3))
        total += elapsed
    return Timing(samples)
