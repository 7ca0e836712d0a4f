"""Pre-flight: check every cell's model config in the parent, before any cell runs, and
resolve what the registry knows about it (family, d_model, n_layers) into the cell.

Model names were checked when the suite was loaded; config fields and values need the
model classes (which import torch), so they are checked here. Errors name the suite
file and the field: `models[1].overrides.n_head` or `axes.d_modle`. A decode cell's model
must also decode at the cell's level (`models.decode.check_decode_capability`). The
execution fields (`compile`, `cuda_graph`) are checked against the resolved device here too
(`tasks.execution.validate_execution`: e.g. cuda_graph on a CPU).

`with_peaks` (called by `run_suite`, not by a dry run) fills in each throughput cell's
`peak_flops_per_s` from this machine's calibration, measured once here in the parent (and
cached), so parallel workers never calibrate.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from gam_bench.cell import Cell
from gam_bench.errors import UserError
from gam_bench.models import registry
from gam_bench.models.decode import check_decode_capability, state_grows
from gam_bench.registry import did_you_mean
from gam_bench.suite import SuiteConfig


def preflight(config: SuiteConfig, cells: list[Cell], source: str) -> list[Cell]:
    """The cells, resolved; UserError for the first whose model cannot be configured as asked."""
    if not cells:
        raise UserError(f"{source}: the suite expands to no cells")
    resolved: dict[str, dict[str, Any]] = {}
    out = []
    for cell in cells:
        _check_execution(cell, source)
        key = json.dumps([cell.model, cell.overrides, cell.level], sort_keys=True, default=str)
        if key not in resolved:
            i = _entry_index(config, cell)
            resolved[key] = _check_cell(cell, f"models[{i}]", set(config.models[i].overrides), source)
            if cell.task == "recall":
                _check_recall(cell, resolved[key], f"models[{i}]", set(config.models[i].overrides), source)
        out.append(cell.model_copy(update=resolved[key]))
    return out


def _entry_index(config: SuiteConfig, cell: Cell) -> int:
    """Index of the models entry a cell came from: same name, preferring one whose overrides are
    all in the cell's (axes win over an entry's overrides, so that may match none)."""
    named = [i for i, entry in enumerate(config.models) if entry.name == cell.model]
    exact = [i for i in named if config.models[i].overrides.items() <= cell.overrides.items()]
    return (exact or named)[0]


def _where(field: str, model_at: str, from_model: set[str]) -> str:
    return f"{model_at}.overrides.{field}" if field in from_model else f"axes.{field}"


def _check_cell(cell: Cell, model_at: str, from_model: set[str], source: str) -> dict[str, Any]:
    """The cell's resolved fields (family, d_model, n_layers), or a UserError naming the field."""
    name = cell.model
    spec = registry.get_spec(name)
    fields = list(spec.config_cls.model_fields)
    for field in cell.overrides:
        if field not in fields:
            hint = did_you_mean(field, fields, "fields")
            raise UserError(
                f"{source}: {_where(field, model_at, from_model)}: model {name!r} has no config field {field!r}{hint}"
            )
    try:
        model_config = registry.make_config(name, **cell.overrides)
    except UserError as exc:
        bad = _bad_field(cell.overrides, str(exc))
        where = _where(bad, model_at, from_model) if bad else f"{model_at}.overrides"
        raise UserError(f"{source}: {where}: {exc}") from None
    if cell.level == "block" and spec.block_cls is None:
        raise UserError(f"{source}: level: model {name!r} has no block-level implementation; use level: lm")
    if cell.task == "decode":  # a model without prefill/decode fails here, not mid-sweep
        check_decode_capability(name, cell.level, where=f"{source}: {model_at}")
    n_layers = 1 if cell.level == "block" else getattr(model_config, "n_layers", None)
    return {"family": spec.family, "d_model": getattr(model_config, "d_model", None), "n_layers": n_layers}


def _check_recall(cell: Cell, resolved: dict[str, Any], model_at: str, from_model: set[str], source: str) -> None:
    """A recall cell sets vocab_size and max_seq_len itself and builds its model at a width and depth."""
    for field, given in (("vocab_size", "recall.vocab_size"), ("max_seq_len", "seq_len")):
        if field in cell.overrides:
            where = _where(field, model_at, from_model)
            raise UserError(f"{source}: {where}: the recall task sets {field} itself (from {given})")
    missing = [f for f in ("d_model", "n_layers") if resolved[f] is None]
    if missing:
        raise UserError(f"{source}: {model_at}.name: model {cell.model!r} has no {' or '.join(missing)} to train at")


def _bad_field(overrides: dict[str, Any], message: str) -> str | None:
    """The override a config error names (`invalid config: <field>: ...` or `<field>=...`)."""
    for field in overrides:
        if f"invalid config: {field}: " in message or f"{field}=" in message:
            return field
    return None


def _check_execution(cell: Cell, source: str) -> None:
    from gam_bench.runner import counting
    from gam_bench.tasks import execution

    if cell.measure.processes > 1 and cell.task != "throughput":
        raise UserError(
            f"{source}: measure.processes: {cell.measure.processes} applies to throughput cells only "
            f"(task {cell.task!r} keeps no per-step time samples to merge over processes)"
        )
    counting.check_cell(cell, source)
    execution.check_task(cell.task, cell.compile, cell.cuda_graph, source)
    execution.validate_execution(cell.compile, cell.cuda_graph, cell.device, cell.mode, source)
    if cell.task == "decode" and cell.cuda_graph:
        _check_graph_decode(cell, source)


def _check_graph_decode(cell: Cell, source: str) -> None:
    """A captured decode step needs a state of fixed size (tasks/decode_execution.py)."""
    if cell.level != "block":
        raise UserError(
            f"{source}: cuda_graph: true decodes at level block only: an LM's state keeps its position as a "
            "host int, which a captured step would replay unchanged"
        )
    if state_grows(registry.get_spec(cell.model)):
        raise UserError(
            f"{source}: cuda_graph: true cannot capture model {cell.model!r}'s decode step: its state grows by "
            "one position per token (a KV cache), and a CUDA graph replays fixed buffers"
        )


CALIBRATE_ENV = "GAM_BENCH_CALIBRATE"  # "0": never calibrate (rows' peak_flops_per_s and mfu stay null)


def with_peaks(cells: list[Cell], enabled: bool = True, note: Callable[[str], Any] | None = None) -> list[Cell]:
    """The cells with `peak_flops_per_s` and `peak_bandwidth_bytes_per_s` set for throughput
    cells that count FLOPs.

    One `calibrate.peak_for` per (device, dtype, threads): the first use on this machine
    measures every dtype and the bandwidth (a few seconds on a CPU) and caches them. Skipped
    when `enabled` is false (the suite's `calibrate: false`) or $GAM_BENCH_CALIBRATE is "0".
    note(message): told when a calibration is measured now (how long it took), not when cached.
    """
    if not enabled or os.environ.get(CALIBRATE_ENV) == "0":
        return cells
    from gam_bench.measure import calibrate
    from gam_bench.measure.environment import usable_cores

    peaks: dict[tuple[str, str, int], dict[str, float | None]] = {}
    out = []
    for cell in cells:
        if cell.task != "throughput" or not cell.measure.flops:
            out.append(cell)
            continue
        key = (cell.device, cell.dtype, cell.threads or usable_cores())
        if key not in peaks:
            start = time.perf_counter()
            peak = calibrate.peak_for(*key)
            peaks[key] = {name: peak.get(name) for name in ("peak_flops_per_s", "bandwidth_bytes_per_s")}
            if peak["measured_now"] and note is not None:
                seconds = time.perf_counter() - start
                note(f"calibration: measured {peak['key']} in {seconds:.1f} s, cached in {calibrate.cache_path()}")
        update = {
            "peak_flops_per_s": peaks[key]["peak_flops_per_s"],
            "peak_bandwidth_bytes_per_s": peaks[key]["bandwidth_bytes_per_s"],
        }
        out.append(cell.model_copy(update=update))
    return out
