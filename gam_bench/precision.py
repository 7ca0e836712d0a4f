"""The one autocast policy of every task.

float32 runs without autocast; bfloat16 and float16 run under `torch.autocast` on the cell's
device type (weights stay float32), as users run them. A float16 backward needs loss scaling:
the throughput task's forward_backward and train_step cells scale with torch.amp.GradScaler
(`training.step.make_scaler`); the perplexity task, which trains to convergence, does not,
so it refuses float16 (`require_trainable`).
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager

import torch

from gam_bench.cell import Cell
from gam_bench.errors import UserError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
TRAINABLE = ("float32", "bfloat16")  # without loss scaling


def autocast_for(cell: Cell) -> AbstractContextManager:
    """A fresh context for the cell's dtype: nothing for float32, else torch.autocast."""
    if cell.dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(cell.device).type, dtype=DTYPES[cell.dtype])


def require_trainable(cell: Cell, task: str) -> None:
    """UserError for a dtype that `task` cannot train in (float16: no loss scaling)."""
    if cell.dtype not in TRAINABLE:
        raise UserError(f"{task} cells run in float32 or bfloat16 (no loss scaling), not dtype={cell.dtype!r}")
