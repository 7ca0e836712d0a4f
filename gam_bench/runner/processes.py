"""A cell over several worker processes (`measure.processes`, pyperf's practice).

The sweep (runner/sweep.py `CellSweep`) makes `measure.processes` passes over the sweep's cells, each
pass in fresh workers, so that a cell's samples come from that many processes *and* from
moments a whole pass apart: on a shared machine a small cell's time sits at one level for a
second or more, in one process as in another, so samples taken in one burst share one level
(measured with `benchmarks/process_levels.py`: docs/results/measured.md).
The outcomes of a cell's passes are merged here (`merge_outcomes`, `merge_rows`):
- `time_samples_ms` (and `device_time_samples_ms`) are every process's samples, in process
  order; `time_ms`, its quartiles, `device_time_ms`, `tokens_per_s` and `flops_per_s` are
  recomputed from all of them (the median over all samples, not a median of medians);
- `process_medians_ms` holds each process's own median and `process_pids` its worker pid;
- `control_ms` is the median of the processes' control-kernel times (measure/control.py);
- `peak_mem_bytes` (and `peak_rss_bytes`) is the largest of the processes' peaks, so a
  memory column never understates what one process needed; every other column (FLOPs,
  tensor bytes, params, backend) is the first process's.
Rows without `time_samples_ms` (a task that does not time steps) cannot be merged: pre-flight
refuses `processes` > 1 for them.

No torch here (numpy only), so the parent does not import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from gam_bench.runner.executor import Outcome

_MAX_COLUMNS = ("peak_mem_bytes", "peak_rss_bytes")


def merge_rows(per_process: list[list[dict[str, Any]]], pids: list[int | None]) -> list[dict[str, Any]]:
    """The cell's rows from each process's rows (same number, same order, in every process)."""
    counts = {len(rows) for rows in per_process}
    if len(counts) != 1:
        raise ValueError(f"processes returned different numbers of rows: {[len(r) for r in per_process]}")
    return [_merge_one([rows[i] for rows in per_process], pids) for i in range(counts.pop())]


def _merge_one(rows: list[dict[str, Any]], pids: list[int | None]) -> dict[str, Any]:
    if any(row.get("time_samples_ms") is None for row in rows):
        raise ValueError("a row without time_samples_ms cannot be merged over processes")
    out = dict(rows[0])
    samples = [float(s) for row in rows for s in row["time_samples_ms"]]
    median = float(np.median(samples))
    out.update(
        processes=len(rows),
        process_medians_ms=[float(np.median(row["time_samples_ms"])) for row in rows],
        process_pids=list(pids),
        time_samples_ms=samples,
        time_ms=median,
        time_ms_q25=float(np.percentile(samples, 25)),
        time_ms_q75=float(np.percentile(samples, 75)),
    )
    if out.get("tokens_per_s") is not None:  # tokens per step / seconds per step, as the task computes it
        out["tokens_per_s"] = rows[0]["tokens_per_s"] * rows[0]["time_ms"] / median
    if out.get("flops") is not None:
        out["flops_per_s"] = out["flops"] / (median / 1e3)
    controls = [row["control_ms"] for row in rows if row.get("control_ms") is not None]
    if controls:
        out["control_ms"] = float(np.median(controls))
    device = [float(s) for row in rows for s in (row.get("device_time_samples_ms") or [])]
    if device:
        out["device_time_samples_ms"] = device
        out["device_time_ms"] = float(np.median(device))
    for name in _MAX_COLUMNS:
        values = [row[name] for row in rows if row.get(name) is not None]
        if values:
            out[name] = max(values)
    return out


def merge_outcomes(outcomes: list[Outcome]) -> Outcome:
    """One `ok` outcome from a cell's `ok` outcomes, one per process (an `error` one when their
    rows do not merge): the rows merged, the highest load, the first start, the summed duration
    (the cell's own time in each process, start-ups excluded)."""
    from gam_bench.runner.executor import Outcome

    first = outcomes[0]
    loads = [o.env["load_avg_1m"] for o in outcomes if o.env.get("load_avg_1m") is not None]
    env = {**first.env, "load_avg_1m": max(loads) if loads else None}
    duration = sum(o.duration_s for o in outcomes)
    try:
        rows = merge_rows([o.rows for o in outcomes], [o.env.get("worker_pid") for o in outcomes])
    except ValueError as exc:
        return Outcome("error", error=f"measure.processes: {exc}", env=env, started_at=first.started_at)
    return Outcome("ok", rows=rows, env=env, started_at=first.started_at, duration_s=duration)
