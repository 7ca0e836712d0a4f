"""Instructions per step, counted by callgrind only around the steps (`measure.instructions`).

A whole-process count is not repeatable (two identical runs of `import torch` plus a few
steps differed by 2.2 M of 5.18 G instructions, the size of the signal), so a counting
worker runs under callgrind with counting off (measure/valgrind.py) and turns it on only
around each counted step:

    counts = count_steps(step, steps=3, folder=valgrind.counting_folder())
    counts.samples        # instructions of each step, in order
    counts.median

For each step: a full garbage collection first (so the collector's own thresholds start
from the same state), ZERO_STATS, TOGGLE_COLLECT, the step, TOGGLE_COLLECT, DUMP_STATS: the
dump's totals are that step's instructions (`Ir`). Instrumentation is on only around the
counted steps (START_INSTRUMENTATION before the first, STOP_INSTRUMENTATION after the last;
each flushes valgrind's translations): everything else in a counting worker
(building the model, its warm-up step, the worker's bookkeeping) runs uninstrumented, several
times faster (docs/results/gate.md: a first warm-up step's one-time work costs most). No
torch here.
"""

from __future__ import annotations

import gc
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gam_bench.measure.callgrind import Callgrind, CountingUnavailable, read_totals

EVENT = "Ir"  # instructions executed


@dataclass(frozen=True)
class InstructionCount:
    samples: list[int]  # per counted step, in order

    @property
    def median(self) -> float:
        return float(statistics.median(self.samples))

    @property
    def spread(self) -> float:
        """(max - min) / median of the samples: 0 when every step counted the same."""
        return (max(self.samples) - min(self.samples)) / self.median if self.median else 0.0


def _profiles(folder: Path, pid: int) -> dict[int, Path]:
    """This process's numbered callgrind dumps in `folder`: dump number -> path."""
    found: dict[int, Path] = {}
    for path in folder.glob(f"callgrind.out.{pid}.*"):
        suffix = path.name.rsplit(".", 1)[-1]
        if suffix.isdigit():
            found[int(suffix)] = path
    return found


def count_steps(
    step: Callable[[], object], steps: int, folder: Path, shim: Callgrind | None = None, label: str = "step"
) -> InstructionCount:
    """Instructions of each of `steps` calls of `step` (CountingUnavailable outside valgrind)."""
    shim = shim or Callgrind.load()
    if not shim.running():
        raise CountingUnavailable("this worker is not running under valgrind")
    pid = os.getpid()
    before = set(_profiles(folder, pid))
    shim.start()
    try:
        for index in range(steps):
            gc.collect()
            shim.zero()
            shim.toggle()
            step()
            shim.toggle()
            shim.dump(f"{label} {index}")
    finally:
        shim.stop()
    dumps = _profiles(folder, pid)
    new = [dumps[number] for number in sorted(set(dumps) - before)]
    if len(new) != steps:
        raise CountingUnavailable(f"callgrind wrote {len(new)} profiles for {steps} counted steps in {folder}")
    samples = [read_totals(path).get(EVENT, 0) for path in new]
    for path in new:
        path.unlink(missing_ok=True)
    return InstructionCount(samples)
