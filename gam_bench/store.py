"""The results store: one row schema, append-only Parquet, atomic writes.

Nothing else in gam-bench touches Parquet. A results folder holds part files
`part-<utc time>-<random>.parquet`; every write creates a new part through a temporary
file and `os.replace`, so a crash or `kill -9` at any moment leaves either the whole
part or nothing. Existing parts are never rewritten.

One row is one attempt at one cell (throughput), or one evaluation point of one cell
(perplexity: several rows per attempt, told apart by `step`). `run_id` identifies the
attempt; `latest()` keeps the newest attempt of every cell.

This module does not import torch.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gam_bench.errors import UserError

SCHEMA_VERSION = 2

STATUSES = ("ok", "oom", "timeout", "error", "skipped")

_F64, _I64, _STR, _BOOL = pa.float64(), pa.int64(), pa.string(), pa.bool_()

SCHEMA = pa.schema(
    [
        ("schema_version", _I64),
        # identity
        ("suite", _STR),
        ("cell_id", _STR),  # stable hash of the cell's full config
        ("run_id", _STR),  # one attempt at a cell
        ("task", _STR),  # "throughput" | "perplexity"
        ("model", _STR),
        ("family", _STR),
        ("backend", _STR),  # what actually ran: attention impl, mamba backend, ...
        ("level", _STR),  # "block" | "lm"
        ("mode", _STR),  # "forward" | "forward_backward" | "train_step"
        ("device", _STR),  # "cpu" | "cuda" | ...
        ("device_name", _STR),
        ("dtype", _STR),
        ("batch_size", _I64),
        ("seq_len", _I64),
        ("d_model", _I64),
        ("n_layers", _I64),
        ("params", _I64),
        ("config_json", _STR),  # the cell's full config, JSON, sorted keys
        # outcome
        ("status", _STR),  # one of STATUSES
        ("error", _STR),
        # throughput measurements
        ("time_ms", _F64),  # median
        ("time_ms_q25", _F64),
        ("time_ms_q75", _F64),
        ("time_samples_ms", pa.list_(_F64)),
        ("tokens_per_s", _F64),
        ("peak_mem_bytes", _I64),
        ("mem_source", _STR),  # how peak memory was measured, e.g. "cuda_allocator", "rss_hwm"
        ("flops", _F64),  # per step, torch.utils.flop_counter
        ("flops_per_s", _F64),
        # perplexity measurements
        ("dataset", _STR),
        ("split", _STR),
        ("data_source", _STR),
        ("data_sha256", _STR),
        ("tokenizer", _STR),
        ("seed", _I64),
        ("step", _I64),
        ("epoch", _F64),
        ("tokens_seen", _I64),
        ("wall_s", _F64),
        ("epoch_time_s", _F64),
        ("train_loss", _F64),
        ("val_loss", _F64),
        ("val_ppl", _F64),
        ("position_loss", pa.list_(_F64)),  # mean val loss per position bucket
        ("position_bucket_edges", pa.list_(_I64)),
        # environment
        ("torch_version", _STR),
        ("cuda_version", _STR),
        ("cpu_model", _STR),
        ("threads", _I64),
        ("load_avg_1m", _F64),  # the machine's 1-minute load average when the cell started (v2)
        ("hostname", _STR),
        ("gam_bench_version", _STR),
        ("git_sha", _STR),
        # accelerator provenance (issue 11; measure/provenance.py, measure/memory.py, measure/timing.py)
        ("backend_reason", _STR),  # which kernel path ran and why (e.g. mamba-ssm import error)
        ("sdpa_kernel", _STR),  # SDPA kernels that ran: flash, efficient, cudnn, flash_cpu, math; "" none
        ("float32_matmul_precision", _STR),  # "highest" | "high" | "medium" (TF32)
        ("cuda_matmul_allow_tf32", _BOOL),
        ("cudnn_enabled", _BOOL),
        ("cudnn_benchmark", _BOOL),
        ("cudnn_deterministic", _BOOL),
        ("cudnn_allow_tf32", _BOOL),
        ("mamba_ssm_version", _STR),
        ("causal_conv1d_version", _STR),
        ("triton_version", _STR),
        ("gpu_sm_clock_mhz", _F64),  # at cell start (NVML / nvidia-smi), null where unreadable
        ("gpu_mem_clock_mhz", _F64),
        ("gpu_max_sm_clock_mhz", _F64),
        ("gpu_power_limit_w", _F64),
        ("device_mem_free_bytes", _I64),  # device (CPU: RAM available) memory at cell start, all processes
        ("device_mem_total_bytes", _I64),
        ("device_time_ms", _F64),  # median of device-event step times (accelerator only)
        ("device_time_samples_ms", pa.list_(_F64)),
        ("executor", _STR),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("duration_s", _F64),
    ]
)

COLUMNS = tuple(SCHEMA.names)


def _check_row(row: Mapping[str, Any]) -> None:
    unknown = set(row) - set(COLUMNS)
    if unknown:
        raise ValueError(f"row has columns outside the schema: {sorted(unknown)}")
    status = row.get("status")
    if status not in STATUSES:
        raise ValueError(f"row status {status!r} is not one of {STATUSES}")


def to_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows (dicts with a subset of COLUMNS) -> a table with the full schema; missing = null."""
    rows = list(rows)
    for row in rows:
        _check_row(row)
    columns = {
        name: [row.get(name, SCHEMA_VERSION if name == "schema_version" else None) for row in rows] for name in COLUMNS
    }
    return pa.Table.from_pydict(columns, schema=SCHEMA)


def append(rows: Iterable[Mapping[str, Any]], folder: str | os.PathLike[str]) -> Path | None:
    """Write `rows` as a new part file in `folder`, atomically. Returns its path (None if no rows)."""
    table = to_table(rows)
    if table.num_rows == 0:
        return None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    final = folder / f"part-{stamp}-{secrets.token_hex(4)}.parquet"
    tmp = folder / f".{final.name}.tmp"
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(folder)
    return final


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def part_files(path: str | os.PathLike[str]) -> list[Path]:
    """The Parquet files under `path` (a file, or a folder searched recursively), sorted."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*.parquet") if not p.name.startswith("."))
    raise UserError(f"{path}: no such results file or folder")


def load(path: str | os.PathLike[str]) -> pd.DataFrame:
    """All rows stored under `path` (file or folder) as one DataFrame with the full schema."""
    files = part_files(path)
    tables = [_read_part(f) for f in files]
    if not tables:
        return SCHEMA.empty_table().to_pandas()
    return pa.concat_tables(tables).to_pandas()


def _read_part(file: Path) -> pa.Table:
    try:
        table = pq.read_table(file)
    except Exception as exc:
        raise UserError(f"{file}: not a readable Parquet results file ({exc})") from exc
    return migrate(table, file)


def migrate(table: pa.Table, source: Path | str = "<table>") -> pa.Table:
    """Bring a stored table to the current schema: add missing columns as nulls, drop none.

    Version 1 is the first schema. Version 2 added `load_avg_1m` (null in version-1 rows).
    Every migration so far only adds columns, which the loop below fills with nulls.
    """
    versions = set(table.column("schema_version").to_pylist()) if "schema_version" in table.column_names else set()
    newer = {v for v in versions if v is not None and v > SCHEMA_VERSION}
    if newer:
        raise UserError(
            f"{source}: schema_version {max(newer)} is newer than this gam-bench understands "
            f"({SCHEMA_VERSION}); upgrade gam-bench"
        )
    columns = []
    for fld in SCHEMA:
        if fld.name in table.column_names:
            columns.append(table.column(fld.name).cast(fld.type))
        else:
            columns.append(pa.nulls(table.num_rows, type=fld.type))
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def latest(df: pd.DataFrame) -> pd.DataFrame:
    """Keep, for every cell_id, only the rows of its newest attempt (run_id with the latest start)."""
    if df.empty:
        return df
    starts = df.groupby("run_id", dropna=False)["started_at"].min().rename("_attempt_start")
    df = df.join(starts, on="run_id")
    newest = df.groupby("cell_id")["_attempt_start"].transform("max")
    return df[df["_attempt_start"] == newest].drop(columns="_attempt_start").reset_index(drop=True)


def done_cell_ids(path: str | os.PathLike[str]) -> set[str]:
    """cell_ids whose newest stored attempt finished `ok` (what a resumed sweep skips)."""
    p = Path(path)
    if not p.exists():
        return set()
    df = latest(load(p))
    return set(df.loc[df["status"] == "ok", "cell_id"])
