"""The one untimed counted step: FLOPs (optional) and peak tensor bytes from a single run.

`FlopCounterMode` (with `flops.FORMULAS`, the same count as `flops.count_flops`) and
`TensorMemory` are both dispatch modes; nested, every op passes through both, so one step
gives both figures (tests check either nesting order agrees). The throughput task calls:

    counted = count_step(step, flops=cell.measure.flops, device=cell.device)
    row["flops"] = counted.flops           # None when flops is False
    row["peak_tensor_bytes"] = counted.peak_tensor_bytes
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from gam_bench.measure.flops import FORMULAS
from gam_bench.measure.tensor_memory import TensorMemory


@dataclass(frozen=True)
class CountedStep:
    flops: int | None  # None when not counted
    peak_tensor_bytes: int  # live tensor storage on the device at the step's peak, inputs and weights included


def count_step(
    step: Callable[[], object], flops: bool, device: torch.device | str | None = None, observe: Any = None
) -> CountedStep:
    """Run `step` once, tracking tensor memory on `device` and, if `flops`, counting FLOPs.

    Tensors live at entry are those reachable from `step` (its closure: module, inputs,
    optimizer), so the figure does not depend on what else the worker holds. observe(func):
    passed to TensorMemory, called with every op (the SDPA-kernel watcher)."""
    counter = FlopCounterMode(display=False, custom_mapping=FORMULAS) if flops else None
    memory = TensorMemory(device, roots=(step,), observe=observe)
    with counter if counter is not None else contextlib.nullcontext(), memory:
        step()
    total = int(counter.get_total_flops()) if counter is not None else None
    return CountedStep(flops=total, peak_tensor_bytes=memory.peak_bytes)
