"""`make_cell(**fields)`: a Cell for tests that need one without a suite (CPU defaults)."""

from __future__ import annotations

from typing import Any

from gam_bench.cell import Cell
from gam_bench.settings import Limits, Measure


def make_cell(**fields: Any) -> Cell:
    defaults: dict[str, Any] = {
        "task": "throughput",
        "model": "gam",
        "overrides": {},
        "level": "block",
        "mode": "forward",
        "dtype": "float32",
        "device": "cpu",
        "batch_size": 1,
        "seq_len": 8,
        "seed": 0,
        "threads": 1,
        "measure": Measure(),
        "limits": Limits(),
        "plugins": [],
    }
    return Cell(**{**defaults, **fields})
