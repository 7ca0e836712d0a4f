"""The results store: one row schema, append-only Parquet, atomic writes.

Nothing else in gam-bench touches Parquet. A results folder holds part files
`part-<utc time>-<random>.parquet`; every write creates a new part through a hidden temporary
file and `os.replace` (`gam_bench.atomic`), so a crash or `kill -9` at any moment leaves either
the whole part or nothing. Existing parts are never rewritten.

A part that cannot be read, or a Parquet file that is not a gam-bench results part (no
`cell_id` or `status` column, or columns of another type), is skipped with a one-line warning
naming it, and the rest loads; `load(..., strict=True)` refuses instead (UserError).

Next to the parts, `suite.json` records the suite that wrote them and its `regression:`
settings for the device used (`write_suite_meta`), so `gam-bench compare` judges with the
suite's own thresholds.

The schema (`schema()`) is the core columns (identity, outcome, time and memory, environment,
execution) plus each task's own columns (`Task.columns`). One row is one attempt at one cell
(throughput), or one evaluation point of one cell (perplexity: several rows per attempt, told
apart by `step`). `run_id` identifies the
attempt; `latest()` keeps the newest attempt of every cell.

This module does not import torch.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import secrets
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gam_bench.atomic import atomic_write
from gam_bench.errors import UserError

SCHEMA_VERSION = 8
SUITE_META = "suite.json"
REQUIRED_COLUMNS = ("cell_id", "status")  # a Parquet file without these is not a results part

STATUSES = ("ok", "oom", "timeout", "diverged", "error", "skipped")  # diverged: training/divergence.py

_F64, _I64, _STR, _BOOL = pa.float64(), pa.int64(), pa.string(), pa.bool_()

CORE_COLUMNS: list[tuple[str, pa.DataType]] = [
    ("schema_version", _I64),
    # identity
    ("suite", _STR),
    ("cell_id", _STR),  # stable hash of the cell's full config
    ("run_id", _STR),  # one attempt at a cell
    ("task", _STR),  # "throughput" | "perplexity" | "decode" | "recall" | a plugin's
    ("model", _STR),
    ("family", _STR),
    ("backend", _STR),  # what actually ran: attention impl, mamba backend, ...
    ("level", _STR),  # "block" | "lm"
    ("mode", _STR),  # one of the task's modes, e.g. "forward" | "forward_backward" | "train_step"
    ("device", _STR),  # "cpu" | "cuda" | ...
    ("device_name", _STR),
    ("dtype", _STR),
    ("batch_size", _I64),
    ("seq_len", _I64),
    ("seed", _I64),
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
    ("control_ms", _F64),  # the control kernel's median around the timing (v4; measure/control.py)
    ("tokens_per_s", _F64),
    ("peak_mem_bytes", _I64),
    ("mem_source", _STR),  # how peak memory was measured, e.g. "cuda_allocator", "rss_hwm"
    # Peak live tensor storage in the untimed counted step (v3): deterministic, comparable across
    # devices; what report, compare and check judge memory on where present. Null until filled.
    ("peak_tensor_bytes", _I64),
    ("peak_rss_bytes", _I64),  # the process's RSS high-water mark, kept as its own figure (v3)
    ("flops", _F64),  # per step, torch.utils.flop_counter
    ("flops_per_s", _F64),
    # environment
    ("torch_version", _STR),
    ("cuda_version", _STR),
    ("cpu_model", _STR),
    ("threads", _I64),
    ("load_avg_1m", _F64),  # the machine's 1-minute load average when the cell started (v2)
    ("hostname", _STR),
    ("gam_bench_version", _STR),
    ("git_sha", _STR),
    # The commit's own time (committer date) and whether tracked files differed from it (v7):
    # what `gam-bench history` orders commits by without a git repository at hand.
    ("git_commit_time", pa.timestamp("us", tz="UTC")),
    ("git_dirty", _BOOL),
    # accelerator provenance (measure/provenance.py, measure/memory.py, measure/timing.py)
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
    # worker process settings (runner/worker.py prepare, measure/memory.tune_malloc)
    ("malloc_tuned", _BOOL),  # glibc mmap/trim thresholds fixed at 1 GiB in the worker; null: not a worker row
    # execution mode and roofline (execution/, measure/calibrate.py); null in older rows
    ("compile", _STR),  # "eager" | "default" | "reduce-overhead" | "max-autotune"
    ("cuda_graph", _BOOL),  # the timed step was a CUDA-graph replay
    ("compile_s", _F64),  # wall seconds of the compiling first call (never timed); null for eager
    ("recompiles", _I64),  # dynamo recompilations during warmup + timing; null for eager
    ("max_rel_err", _F64),  # compiled vs eager on the same inputs (outputs and gradients)
    ("parity_ok", _BOOL),  # max_rel_err within execution.PARITY_TOL[dtype]; null: not compared
    ("parity_note", _STR),  # why parity failed or was not comparable
    ("peak_flops_per_s", _F64),  # this machine's calibrated dense-matmul peak for the dtype
    ("mfu", _F64),  # flops_per_s / peak_flops_per_s
    # -- processes and worker release (runner: executor.py, processes.py)
    ("processes", _I64),  # fresh worker processes the cell's timed steps were spread over
    ("process_medians_ms", pa.list_(_F64)),  # median step time of each process, in order
    ("process_pids", pa.list_(_I64)),  # the worker pid of each process, in order
    ("release_wait_s", _F64),  # how long the runner waited for a failed worker's device memory before this cell
    ("release_ok", _BOOL),  # False: that memory was not back within the wait (an oom here may be false)
    ("executor", _STR),
    ("search", _STR),  # a search probe (v8; gam_bench.search): the suite's search settings, JSON; null in a grid
    ("started_at", pa.timestamp("us", tz="UTC")),
    ("duration_s", _F64),
]
# The Arrow type of each type name a task may give its columns (gam_bench.tasks.base.COLUMN_TYPES).
TYPES = {
    "float64": _F64,
    "int64": _I64,
    "string": _STR,
    "bool": _BOOL,
    "list<float64>": pa.list_(_F64),
    "list<int64>": pa.list_(_I64),
}
_schemas: dict[tuple[str, ...], pa.Schema] = {}


def schema() -> pa.Schema:
    """The row schema: the core columns, then each task's own columns (`Task.columns`, in the
    order tasks are registered; a column two tasks share is listed once, with one type)."""
    from gam_bench.tasks import all_tasks

    tasks = all_tasks()
    key = tuple(task.name for task in tasks)
    if key not in _schemas:
        fields = dict(CORE_COLUMNS)
        for task in tasks:
            for name, type_name in task.columns.items():
                if type_name not in TYPES:
                    raise ValueError(f"task {task.name!r}: column {name!r} has unknown type {type_name!r}")
                if fields.setdefault(name, TYPES[type_name]) != TYPES[type_name]:
                    raise ValueError(f"task {task.name!r}: column {name!r} is {type_name}, another says {fields[name]}")
        _schemas[key] = pa.schema(list(fields.items()))
    return _schemas[key]


def columns() -> tuple[str, ...]:
    """The names of `schema()`'s columns."""
    return tuple(schema().names)


def _check_row(row: Mapping[str, Any]) -> None:
    unknown = set(row) - set(columns())
    if unknown:
        raise ValueError(f"row has columns outside the schema: {sorted(unknown)}")
    status = row.get("status")
    if status not in STATUSES:
        raise ValueError(f"row status {status!r} is not one of {STATUSES}")
    bad = non_finite_columns(row) if status == "ok" else []
    if bad:
        values = ", ".join(f"{name}={row[name]!r}" for name in bad)
        raise ValueError(f"an ok row holds non-finite values ({values}); a failed measurement is not ok")


def non_finite_columns(row: Mapping[str, Any]) -> list[str]:
    """The columns of `row` holding NaN or inf: a real number, or one inside a list or array."""
    bad = []
    for name, value in row.items():
        if hasattr(value, "tolist") and not isinstance(value, numbers.Number):
            value = value.tolist()  # a numpy array
        values = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(v, numbers.Real) and not math.isfinite(v) for v in values):
            bad.append(name)
    return sorted(bad)


def to_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows (dicts with a subset of `columns()`) -> a table with the full schema; missing = null."""
    rows = list(rows)
    for row in rows:
        _check_row(row)
    names = columns()
    values = {
        name: [row.get(name, SCHEMA_VERSION if name == "schema_version" else None) for row in rows] for name in names
    }
    return pa.Table.from_pydict(values, schema=schema())


def append(rows: Iterable[Mapping[str, Any]], folder: str | os.PathLike[str]) -> Path | None:
    """Write `rows` as a new part file in `folder`, atomically. Returns its path (None if no rows)."""
    table = to_table(rows)
    if table.num_rows == 0:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    final = Path(folder) / f"part-{stamp}-{secrets.token_hex(4)}.parquet"
    return atomic_write(final, lambda tmp: pq.write_table(table, tmp))


def part_files(path: str | os.PathLike[str]) -> list[Path]:
    """The Parquet files under `path` (a file, or a folder searched recursively), sorted."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*.parquet") if not p.name.startswith("."))
    raise UserError(f"{path}: no such results file or folder")


def load(path: str | os.PathLike[str], *, strict: bool = False) -> pd.DataFrame:
    """All rows stored under `path` (file or folder) as one DataFrame with the full schema.

    An unreadable or foreign part is skipped with a one-line warning on stderr, or, with
    `strict`, refused (UserError).
    """
    tables = []
    for file in part_files(path):
        try:
            tables.append(_read_part(file))
        except _BadPart as exc:
            if strict:
                raise UserError(f"{file}: {exc} (--strict)") from None
            print(f"warning: skipped {file}: {exc}", file=sys.stderr)
    if not tables:
        return schema().empty_table().to_pandas()
    return pa.concat_tables(tables, promote_options="default").to_pandas()


class _BadPart(Exception):
    """A part file that is not a readable gam-bench results part; the message says why."""


def _read_part(file: Path) -> pa.Table:
    try:
        table = pq.read_table(file)
    except Exception as exc:
        raise _BadPart(f"not a readable Parquet file ({_first_line(exc)})") from exc
    missing = [name for name in REQUIRED_COLUMNS if name not in table.column_names]
    if missing:
        raise _BadPart(f"not a gam-bench results part (no {', '.join(missing)} column)")
    try:
        return migrate(table, file)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise _BadPart(f"not a gam-bench results part ({_first_line(exc)})") from exc


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def migrate(table: pa.Table, source: Path | str = "<table>") -> pa.Table:
    """Bring a stored table to the current schema: add missing columns as nulls, drop none (a
    column no known task declares, e.g. a plugin task's when its plugin is not imported, is kept
    after the schema's columns).

    Version 1 is the first schema. Version 2 added `load_avg_1m` (null in version-1 rows);
    version 3 added `peak_tensor_bytes` and `peak_rss_bytes`; version 4, `control_ms`; version 5,
    the status `diverged` and its columns `diverged_step`, `diverged_tokens`, `last_finite_loss`,
    `diverged_where`, and the deterministic step costs (`instructions`, op counts); version 6,
    the fairness audit's `peak_bandwidth_bytes_per_s`, `min_bytes`, `roofline_ms` and
    `roofline_fraction`; version 7, the commit's time and state, `git_commit_time` and
    `git_dirty` (for `gam-bench history`); version 8, `search` (the settings of the search a
    probe row belongs to, gam_bench.search). Every migration so far only adds columns, which the loop below fills
    with nulls.
    """
    versions = set(table.column("schema_version").to_pylist()) if "schema_version" in table.column_names else set()
    newer = {v for v in versions if v is not None and v > SCHEMA_VERSION}
    if newer:
        raise UserError(
            f"{source}: schema_version {max(newer)} is newer than this gam-bench understands "
            f"({SCHEMA_VERSION}); upgrade gam-bench"
        )
    target = schema()
    arrays = []
    for fld in target:
        if fld.name in table.column_names:
            arrays.append(table.column(fld.name).cast(fld.type))
        else:
            arrays.append(pa.nulls(table.num_rows, type=fld.type))
    extra = [name for name in table.column_names if name not in target.names]
    fields = list(target) + [table.schema.field(name) for name in extra]
    return pa.Table.from_arrays(arrays + [table.column(name) for name in extra], schema=pa.schema(fields))


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


def write_suite_meta(
    folder: str | os.PathLike[str], *, suite: str, source: str, regression: Mapping[str, Any] | None
) -> Path:
    """Record, atomically, which suite wrote `folder` and its `regression:` settings (None: none given)."""
    meta = {"suite": suite, "source": source, "regression": dict(regression) if regression else None}
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    return atomic_write(Path(folder) / SUITE_META, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_suite_meta(folder: str | os.PathLike[str], *, strict: bool = False) -> dict[str, Any] | None:
    """What `write_suite_meta` recorded in `folder` (None if nothing was; an unreadable file warns, or
    with `strict` is refused)."""
    file = Path(folder) / SUITE_META
    if not file.is_file():
        return None
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        if strict:
            raise UserError(f"{file}: unreadable suite record ({_first_line(exc)}) (--strict)") from None
        print(f"warning: ignored {file}: unreadable suite record ({_first_line(exc)})", file=sys.stderr)
        return None
    return meta


def suite_meta_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The suite record in `folder`, if any (what a copy of the folder's results takes along)."""
    file = Path(folder) / SUITE_META
    return [file] if file.is_file() else []
