"""Reading one stored row: its config, its short label, and which memory column to trust.

Shared by `gam_bench.analysis` (compare, check) and `gam_bench.report`. No torch here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

TENSOR_MEMORY = "peak_tensor_bytes"  # live tensor storage, counted (deterministic)
MEASURED_MEMORY = "peak_mem_bytes"  # what the device reported: CUDA allocator peak or CPU RSS high-water mark


def present(value: Any) -> bool:
    """Not None and not NaN (a stored null reads back as either)."""
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and value is not pd.NA


def parse_config(text: object) -> dict[str, Any]:
    """A row's `config_json` as a dict ({} when missing or unreadable)."""
    try:
        value = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def cell_label(row: Mapping[str, Any]) -> str:
    """Short human name of a stored cell: `gam block forward_backward float32 B=2 T=256 d_model=64`."""
    parts = [str(row.get(key)) for key in ("model", "level", "mode", "dtype") if present(row.get(key))]
    for key, short in (("batch_size", "B"), ("seq_len", "T")):
        if present(row.get(key)):
            parts.append(f"{short}={int(row[key])}")
    overrides = parse_config(row.get("config_json")).get("overrides") or {}
    parts += [f"{key}={value}" for key, value in sorted(overrides.items())]
    return " ".join(parts)


def memory_column(*rows: Mapping[str, Any]) -> str:
    """`peak_tensor_bytes` when every given row has it, else `peak_mem_bytes`."""
    return TENSOR_MEMORY if rows and all(present(row.get(TENSOR_MEMORY)) for row in rows) else MEASURED_MEMORY


def frame_memory_column(df: pd.DataFrame) -> str:
    """`peak_tensor_bytes` when every ok row of `df` has it, else `peak_mem_bytes` (one choice per frame)."""
    ok = df[df["status"] == "ok"] if "status" in df else df
    if TENSOR_MEMORY in ok and len(ok) and ok[TENSOR_MEMORY].notna().all():
        return TENSOR_MEMORY
    return MEASURED_MEMORY
