"""Pre-flight: check every cell's model config in the parent, before any cell runs, and
resolve what the registry knows about it (family, d_model, n_layers) into the cell.

Model names were checked when the suite was loaded; config fields and values need the
model classes (which import torch), so they are checked here. Errors name the suite
file and the field: `models[1].overrides.n_head` or `axes.d_modle`. Then the cell's task
checks it (`Task.preflight`: e.g. a decode cell's model must decode at its level), and the
cell's full model config is resolved once, as its task needs it (models/builder.py:
max_seq_len, vocab_size), and carried on the cell (`resolved_config`) for the worker to build
from. The generic fields a task may not honour are refused for it (`Task.capabilities`:
compile and cuda_graph, measure.processes), and the execution fields are checked against the
resolved device (`execution.validate_execution`: e.g. cuda_graph on a CPU).

`with_peaks` (called by `run_suite`, not by a dry run) fills in `peak_flops_per_s` of each
cell whose task uses the calibration, from this machine's matmul peak measured once here in
the parent (and cached), so parallel workers never calibrate.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from gam_bench.cell import Cell
from gam_bench.errors import UserError
from gam_bench.models import builder, registry
from gam_bench.registry import did_you_mean
from gam_bench.suite import SuiteConfig
from gam_bench.tasks.base import Origin, Task


def preflight(config: SuiteConfig, cells: list[Cell], source: str) -> list[Cell]:
    """The cells, resolved; UserError for the first whose model cannot be configured as asked."""
    if not cells:
        raise UserError(f"{source}: the suite expands to no cells")
    resolved: dict[str, dict[str, Any]] = {}
    out = []
    for cell in cells:
        _check_execution(cell, source)
        i = _entry_index(config, cell)
        origin = Origin(source, f"models[{i}]", frozenset(config.models[i].overrides))
        key = json.dumps([cell.model, cell.overrides, cell.level, cell.task], sort_keys=True, default=str)
        if key not in resolved:
            model_config, resolved[key] = _check_cell(cell, origin)
            cell.task_spec.preflight(cell, model_config, origin)
        full = _resolve(cell, origin)  # the config the worker builds: the task's needs applied (models/builder.py)
        out.append(cell.model_copy(update={**resolved[key], "resolved_config": builder.config_fields(full)}))
    return out


def _resolve(cell: Cell, origin: Origin) -> Any:
    """The cell's full model config (max_seq_len, vocab_size and defaults as its task needs them)."""
    try:
        return builder.resolve_config(cell.model, cell.overrides, cell.task_spec.model_needs(cell))
    except UserError as exc:
        bad = _bad_field(cell.overrides, str(exc))
        raise UserError(f"{origin.at(bad) if bad else origin.model}: {exc}") from None


def _entry_index(config: SuiteConfig, cell: Cell) -> int:
    """Index of the models entry a cell came from: same name, preferring one whose overrides are
    all in the cell's (axes win over an entry's overrides, so that may match none)."""
    named = [i for i, entry in enumerate(config.models) if entry.name == cell.model]
    exact = [i for i in named if config.models[i].overrides.items() <= cell.overrides.items()]
    return (exact or named)[0]


def _check_cell(cell: Cell, origin: Origin) -> tuple[Any, dict[str, Any]]:
    """The cell's model config and resolved fields (family, d_model, n_layers), or a UserError naming the field."""
    name = cell.model
    spec = registry.get_spec(name)
    fields = list(spec.config_cls.model_fields)
    for field in cell.overrides:
        if field not in fields:
            hint = did_you_mean(field, fields, "fields")
            raise UserError(f"{origin.at(field)}: model {name!r} has no config field {field!r}{hint}")
    try:
        model_config = registry.make_config(name, **cell.overrides)
    except UserError as exc:
        bad = _bad_field(cell.overrides, str(exc))
        where = origin.at(bad) if bad else f"{origin.model}.overrides"
        raise UserError(f"{where}: {exc}") from None
    if cell.level == "block" and spec.block_cls is None:
        raise UserError(f"{origin.source}: level: model {name!r} has no block-level implementation; use level: lm")
    n_layers = 1 if cell.level == "block" else getattr(model_config, "n_layers", None)
    return model_config, {
        "family": spec.family,
        "d_model": getattr(model_config, "d_model", None),
        "n_layers": n_layers,
    }


def _bad_field(overrides: dict[str, Any], message: str) -> str | None:
    """The override a config error names (`invalid config: <field>: ...` or `<field>=...`)."""
    for field in overrides:
        if f"invalid config: {field}: " in message or f"{field}=" in message:
            return field
    return None


def _check_execution(cell: Cell, source: str) -> None:
    from gam_bench import execution
    from gam_bench.runner import counting

    counting.check_cell(cell, source)
    check_capabilities(cell.task_spec, cell.compile, cell.cuda_graph, cell.measure.processes, source)
    execution.validate_execution(cell.compile, cell.cuda_graph, cell.device, cell.mode, source)


def check_capabilities(task: Task, compile: str, cuda_graph: bool, processes: int, where: str) -> None:
    """Generic cell fields a task does not honour (`Task.capabilities`) are refused, never ignored."""
    from gam_bench.tasks import all_tasks

    def takers(capability: str) -> str:
        return " and ".join(t.name for t in all_tasks() if getattr(t.capabilities, capability))

    if processes > 1 and not task.capabilities.processes:
        raise UserError(
            f"{where}: measure.processes: {processes} applies to {takers('processes')} cells only "
            f"(task {task.name!r} keeps no per-step time samples to merge over processes)"
        )
    if not task.capabilities.compile and (compile != "eager" or cuda_graph):
        field, value = ("compile", compile) if compile != "eager" else ("cuda_graph", "true")
        raise UserError(
            f"{where}: {field}: {value} is for {takers('compile')} cells; task {task.name!r} runs eager only"
        )


CALIBRATE_ENV = "GAM_BENCH_CALIBRATE"  # "0": never calibrate (rows' peak_flops_per_s and mfu stay null)


def with_peaks(cells: list[Cell], enabled: bool = True, note: Callable[[str], Any] | None = None) -> list[Cell]:
    """The cells with `peak_flops_per_s` and `peak_bandwidth_bytes_per_s` set for cells that count
    FLOPs, of a task that uses the calibration.

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
        if not cell.task_spec.capabilities.calibration or not cell.measure.flops:
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
