"""A control kernel: how fast this machine is at the moment a cell is timed.

On a shared machine, fresh processes of the same cell sit at per-process time levels, and a
fixed matmul on preallocated buffers, timed in the same processes, moves with them, while page
faults, CPU affinity and address-space randomisation do not (`benchmarks/process_levels.py`;
figures in docs/results/measured.md): the levels are the machine's speed (other tenants,
clocks), which nothing inside the process fixes. (Not every level is: a small cell's time also
sits at levels of its own for a second or more while this kernel does not move, which only
sampling over time helps: `measure.processes`, runner/processes.py.)
So every throughput cell times this
kernel just before its warmup and just after its timed steps (`control_ms`, the median of
both), and the gate can judge times relative to it (`regression.control: true`, the
default): a code change moves the cell and not the control; the machine moves both.

The kernel: C = A @ B for fixed 256 x 256 float32 matrices on the cell's device (33.5
MFLOP: about 0.5 ms at one CPU thread here), `repeats` times, synchronised, after one
untimed call.
"""

from __future__ import annotations

import statistics
import time

import torch

from gam_bench.measure import accelerator

SIZE = 256


class Control:
    """`Control(device)`, then `.sample()` around a cell's timing, then `.median_ms`."""

    def __init__(self, device: torch.device | str, repeats: int = 5) -> None:
        self.device = torch.device(device)
        self.repeats = repeats
        generator = torch.Generator().manual_seed(0)
        a, b = (torch.randn(SIZE, SIZE, generator=generator) for _ in range(2))  # (S, S) each
        self._a, self._b = a.to(self.device), b.to(self.device)
        self._c = torch.empty(SIZE, SIZE, device=self.device)  # (S, S)
        self.samples_ms: list[float] = []

    def _sync(self) -> None:
        if self.device.type != "cpu":
            accelerator.synchronize(self.device)

    def sample(self) -> None:
        """One untimed call, then `repeats` timed calls appended to `samples_ms`."""
        torch.mm(self._a, self._b, out=self._c)
        for _ in range(self.repeats):
            self._sync()
            start = time.perf_counter()
            torch.mm(self._a, self._b, out=self._c)
            self._sync()
            self.samples_ms.append((time.perf_counter() - start) * 1e3)

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.samples_ms) if self.samples_ms else None
