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

One row is one attempt at one cell (throughput), or one evaluation point of one cell
(perplexity: several rows per attempt, told apart by `step`). `run_id` identifies the
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

SCHEMA_VERSION = 6
SUITE_META = "suite.json"
REQUIRED_COLUMNS = ("cell_id", "status")  # a Parquet file without these is not a results part

STATUSES = ("ok", "oom", "timeout", "diverged", "error", "skipped")  # diverged: tasks/divergence.py

_F64, _I64, _STR, _BOOL = pa.float64(), pa.int64(), pa.string(), pa.bool_()

SCHEMA = pa.schema(
    [
        ("schema_version", _I64),
        # identity
        ("suite", _STR),
        ("cell_id", _STR),  # stable hash of the cell's full config
        ("run_id", _STR),  # one attempt at a cell
        ("task", _STR),  # "throughput" | "perplexity" | "recall"
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
        ("control_ms", _F64),  # the control kernel's median around the timing (v4; measure/control.py)
        ("tokens_per_s", _F64),
        ("peak_mem_bytes", _I64),
        ("mem_source", _STR),  # how peak memory was measured, e.g. "cuda_allocator", "rss_hwm"
        # Peak live tensor storage in the untimed counted step (v3): deterministic, comparable across
        # devices; what report, compare and check judge memory on where present. Null until filled.
        ("peak_tensor_bytes", _I64),
        ("peak_rss_bytes", _I64),  # the process's RSS high-water mark, kept as its own figure (v3)
        ("flops", _F64),  # per step, torch.utils.flop_counter
        # deterministic costs of one step (measure/instructions.py, measure/op_count.py); null where not counted
        ("dispatched_ops", _I64),  # aten ops dispatched in the counted step (forward and backward)
        ("instructions", _F64),  # median instructions per step, callgrind (`measure.instructions`)
        ("instructions_samples", pa.list_(_I64)),  # each counted step's instructions, in order
        ("instructions_tool", _STR),  # e.g. "callgrind 3.19.0"
        ("instructions_reason", _STR),  # why a cell asking for instructions has none (valgrind missing, ...)
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
        # decode measurements (task "decode"; gam_bench.tasks.decode): context N = seq_len,
        # G = decode_tokens decode steps after a prefill of N tokens; null where the mode measures no such thing
        ("decode_tokens", _I64),  # G (0 for mode prefill)
        ("prefill_ms", _F64),  # median prefill of N tokens (an LM computes the last position's logits only)
        ("prefill_ms_q25", _F64),
        ("prefill_ms_q75", _F64),
        ("prefill_samples_ms", pa.list_(_F64)),
        ("prefill_tokens_per_s", _F64),  # batch * N / prefill_ms
        ("decode_ms_per_token", _F64),  # median of the G decode steps (latency at context N)
        ("decode_ms_q25", _F64),
        ("decode_ms_q75", _F64),
        ("decode_samples_ms", pa.list_(_F64)),  # every decode step, in order
        ("decode_tokens_per_s", _F64),  # batch / decode_ms_per_token
        ("state_bytes", _I64),  # decode-state tensor bytes at N (after prefill)
        ("state_bytes_final", _I64),  # at N + G
        ("decode_backend", _STR),  # the implementation decode ran (e.g. torch step, mamba-ssm)
        # recall (MQAR) measurements (tasks/recall.py). Also uses train_loss, step (optimiser
        # steps), wall_s (training seconds), tokens_seen, tokens_per_s, dataset ("mqar") and split ("test").
        ("accuracy", _F64),  # correct / n_answers: argmax hits at every answer position of the test set
        ("correct", _I64),
        ("n_answers", _I64),
        ("probe_correct", _I64),  # hits on one seeded answer per test example (independent trials)
        ("n_examples", _I64),
        ("chance", _F64),  # 1 / number of value tokens
        ("chance_in_context", _F64),  # 1 / num_kv_pairs
        ("num_kv_pairs", _I64),
        ("lr", _F64),
        ("vocab_size", _I64),
        ("power_a", _F64),  # query placement power law
        ("pos_init", _STR),  # how learned position embeddings were initialised (RecallSettings.pos_init_std)
        ("train_examples", _I64),
        ("test_rejected", _I64),  # test draws redrawn because they repeated a training problem
        ("budget", _STR),  # "steps=N" or "seconds=S"
        # divergence (tasks/divergence.py): on every row of a cell stored with status "diverged" (v5)
        ("diverged_step", _I64),  # the 1-based optimiser step whose loss or gradient was non-finite
        ("diverged_tokens", _I64),  # tokens trained on before that step
        ("last_finite_loss", _F64),  # the last finite training loss before it; null: none
        ("diverged_where", _STR),  # the first non-finite value on a re-run of that step (divergence.locate)
        # environment
        ("torch_version", _STR),
        ("cuda_version", _STR),
        ("cpu_model", _STR),
        ("threads", _I64),
        ("load_avg_1m", _F64),  # the machine's 1-minute load average when the cell started (v2)
        ("hostname", _STR),
        ("gam_bench_version", _STR),
        ("git_sha", _STR),
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
        # execution mode and roofline (tasks/execution.py, measure/calibrate.py); null in older rows
        ("compile", _STR),  # "eager" | "default" | "reduce-overhead" | "max-autotune"
        ("cuda_graph", _BOOL),  # the timed step was a CUDA-graph replay
        ("compile_s", _F64),  # wall seconds of the compiling first call (never timed); null for eager
        ("recompiles", _I64),  # dynamo recompilations during warmup + timing; null for eager
        ("max_rel_err", _F64),  # compiled vs eager on the same inputs (outputs and gradients)
        ("parity_ok", _BOOL),  # max_rel_err within tasks.execution.PARITY_TOL[dtype]; null: not compared
        ("parity_note", _STR),  # why parity failed or was not comparable
        ("peak_flops_per_s", _F64),  # this machine's calibrated dense-matmul peak for the dtype
        ("mfu", _F64),  # flops_per_s / peak_flops_per_s
        # fairness audit (models/work.py, measure/calibrate.roofline_ms); null without calibration or FLOPs
        ("peak_bandwidth_bytes_per_s", _F64),  # this machine's calibrated copy bandwidth
        ("min_bytes", _I64),  # the family's declared minimal bytes moved by one step
        ("roofline_ms", _F64),  # max(flops / peak_flops_per_s, min_bytes / peak_bandwidth_bytes_per_s)
        ("roofline_fraction", _F64),  # roofline_ms / time_ms (1: at the roofline)
        # -- processes and worker release (runner: executor.py, processes.py)
        ("processes", _I64),  # fresh worker processes the cell's timed steps were spread over
        ("process_medians_ms", pa.list_(_F64)),  # median step time of each process, in order
        ("process_pids", pa.list_(_I64)),  # the worker pid of each process, in order
        ("release_wait_s", _F64),  # how long the runner waited for a failed worker's device memory before this cell
        ("release_ok", _BOOL),  # False: that memory was not back within the wait (an oom here may be false)
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
        return SCHEMA.empty_table().to_pandas()
    return pa.concat_tables(tables).to_pandas()


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
    """Bring a stored table to the current schema: add missing columns as nulls, drop none.

    Version 1 is the first schema. Version 2 added `load_avg_1m` (null in version-1 rows);
    version 3 added `peak_tensor_bytes` and `peak_rss_bytes`; version 4, `control_ms`; version 5,
    the status `diverged` and its columns `diverged_step`, `diverged_tokens`, `last_finite_loss`,
    `diverged_where`, and the deterministic step costs (`instructions`, op counts); version 6,
    the fairness audit's `peak_bandwidth_bytes_per_s`, `min_bytes`, `roofline_ms` and
    `roofline_fraction`. Every migration so far only adds columns, which the loop below fills
    with nulls.
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
