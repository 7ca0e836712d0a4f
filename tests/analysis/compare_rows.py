"""Synthetic result rows for the comparison tests (the store schema, no measurement)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pandas as pd

from gam_bench import store

_T0 = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)


def samples(median: float, n: int = 12, spread: float = 0.01, seed: int = 0) -> list[float]:
    """n timing samples around `median` with relative noise `spread` (deterministic)."""
    rng = np.random.default_rng(seed)
    return list(median * (1 + spread * rng.standard_normal(n)))


def row(
    seq_len: int,
    time: list[float] | None = None,
    mem: int | None = 400 * 2**20,
    *,
    status: str = "ok",
    model: str = "gam",
    measure: dict | None = None,
    attempt: int = 0,
    **columns: Any,
) -> dict[str, Any]:
    """One throughput row of cell (model, seq_len); `measure` changes the cell_id, not the config key."""
    config = {
        "task": "throughput",
        "model": model,
        "overrides": {"d_model": 64},
        "level": "block",
        "mode": "forward",
        "dtype": "float32",
        "device": columns.get("device", "cpu"),
        "batch_size": 2,
        "seq_len": seq_len,
        "seed": 0,
        "measure": measure or {"repeats": 12},
    }
    cell_id = f"{model}-{seq_len}-{json.dumps(measure or {}, sort_keys=True)}"
    time = samples(10.0 * seq_len / 64) if time is None and status == "ok" else (time or [])
    base = dict(
        cell_id=cell_id,
        run_id=f"{cell_id}#{attempt}",
        task="throughput",
        model=model,
        level="block",
        mode="forward",
        dtype="float32",
        batch_size=2,
        seq_len=seq_len,
        status=status,
        device="cpu",
        threads=2,
        cpu_model="Test CPU",
        config_json=json.dumps(config, sort_keys=True),
        time_samples_ms=time or None,
        time_ms=float(np.median(time)) if time else None,
        peak_mem_bytes=mem if status == "ok" else None,
        started_at=_T0 + dt.timedelta(minutes=attempt),
    )
    return {**base, **columns}


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return store.to_table(rows).to_pandas()
