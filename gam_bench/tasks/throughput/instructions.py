"""The counting pass of a throughput cell: instructions per step under callgrind.

A counting worker (started under valgrind by runner/counting.py; `valgrind.counting_folder()`
is set in it) runs this instead of the throughput task: it builds the cell's model and step
exactly as the throughput task does (`models.builder.build_for`, `throughput.make_step`),
runs one untimed warm-up step (lazy initialisation, first-call caches), then counts
`measure.instruction_steps` steps (measure/instructions.py). Nothing is timed here: under
valgrind a step runs hundreds of times slower, and the cell's times come from its ordinary
passes. Columns: `instructions` (median over the counted steps), `instructions_samples`
(each step's count), `instructions_tool` (e.g. "callgrind 3.19.0") and `instructions_build`:
the kernel build counted where it is not the timed one (Mamba's fused CPU scan: a counting
worker builds it for x86-64-v3, as valgrind 3.19 runs no AVX-512; models/cpu_scan.py), else null.
Only the counted steps run instrumented (`count_steps` switches it on and off around them).
"""

from __future__ import annotations

from typing import Any

import torch

from gam_bench.cell import Cell
from gam_bench.measure.instructions import count_steps
from gam_bench.measure.timing import warm_up
from gam_bench.measure.valgrind import counting_folder, counting_tool
from gam_bench.models import cpu_scan
from gam_bench.models.builder import build_for
from gam_bench.tasks.throughput import measure as throughput

WARMUP = 1


def run(cell: Cell) -> list[dict[str, Any]]:
    """Count one cell's steps in this (counting) worker; one row of instruction columns."""
    folder = counting_folder()
    if folder is None:
        raise RuntimeError("instruction counting runs only in a counting worker (started under valgrind)")
    torch.manual_seed(cell.seed)
    module, config = build_for(cell)
    step = throughput.make_step(cell, module, config)
    warm_up(step, WARMUP, torch.device(cell.device))
    counts = count_steps(step, cell.measure.instruction_steps, folder, label=cell.cell_id)
    return [
        {
            "instructions": counts.median,
            "instructions_samples": [int(value) for value in counts.samples],
            "instructions_tool": counting_tool(),
            "instructions_build": counted_build(module),
        }
    ]


def counted_build(module: torch.nn.Module) -> str | None:
    """The fused CPU kernels' build ("selective_scan -march=x86-64-v3") when `module` runs them,
    else None. Every backend that runs them is named "cpu-..." (Mamba's cpu-fused-scan; the fused
    conv of Mamba2, Gated DeltaNet and the hybrid: cpu-conv+...)."""
    runs_kernel = any(str(getattr(sub, "backend", "")).startswith("cpu-") for sub in module.modules())
    return cpu_scan.build_label() if runs_kernel else None
