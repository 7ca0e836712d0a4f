"""The throughput task: time one model (a block or the whole LM) at one shape.

Its modes are forward, forward_backward and train_step (what one timed step does, see
`measure`); it honours every generic cell feature (compile and CUDA graphs,
`measure.processes`, worker priming, the matmul-peak calibration for mfu), adds no columns
of its own but its deterministic step costs (instructions, dispatched ops; time, memory,
FLOPs and execution columns are the store's core columns, which other tasks fill too) and is
what the gate judges by default: the counts (instructions, FLOPs, dispatched ops), peak
memory and time (the stored samples).

No torch here: `measure` holds the work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gam_bench.tasks.base import SILENT, Capabilities, GateMetric, RunContext, Task

if TYPE_CHECKING:
    from gam_bench.cell import Cell

_PRIMED: set[str] = set()  # budget groups (model settings) primed in this worker
PRIME_SEQ_LEN = 16


class Throughput(Task):
    name = "throughput"
    description = "time one step (forward, forward+backward or a train step) of a block or an LM"
    report = "gam_bench.report.throughput"  # its report section (labels, section, METHOD)
    capabilities = Capabilities(
        compile=True, processes=True, priming=True, calibration=True, instructions=True, search=True
    )
    # Deterministic costs of one step (measure/instructions.py, measure/op_count.py); null where not counted.
    columns = {
        "dispatched_ops": "int64",  # aten ops dispatched in the counted step (forward and backward)
        "instructions": "float64",  # median instructions per step, callgrind (`measure.instructions`)
        "instructions_samples": "list<int64>",  # each counted step's instructions, in order
        "instructions_tool": "string",  # e.g. "callgrind 3.19.0"
        "instructions_reason": "string",  # why a cell asking for instructions has none (valgrind missing, ...)
        "instructions_build": "string",  # the kernel build counted where it is not the timed one (Mamba's scan)
        # fairness audit (models/work.py, measure/calibrate.roofline_ms); null without calibration or FLOPs
        "peak_bandwidth_bytes_per_s": "float64",  # this machine's calibrated copy bandwidth
        "min_bytes": "int64",  # the family's declared minimal bytes moved by one step
        "roofline_ms": "float64",  # max(flops / peak_flops_per_s, min_bytes / peak_bandwidth_bytes_per_s)
        "roofline_fraction": "float64",  # roofline_ms / time_ms (1: at the roofline)
    }
    gate_metrics = (  # deterministic counts first, then memory, then time
        GateMetric("instructions", "instructions", deterministic=True, setting="instructions_threshold"),
        GateMetric("flops", "flops", deterministic=True, setting="flops_threshold"),
        GateMetric("ops", "dispatched_ops", deterministic=True, setting="ops_threshold"),
        GateMetric("memory", "peak_tensor_bytes", deterministic=True, kind="memory"),
        GateMetric("time", "time_samples_ms", kind="time"),
    )

    def run(self, cell: Cell, ctx: RunContext = SILENT) -> list[dict[str, Any]]:
        from gam_bench.tasks.throughput import measure

        return measure.run(cell, ctx)

    def count_instructions(self, cell: Cell, ctx: RunContext = SILENT) -> list[dict[str, Any]]:
        from gam_bench.tasks.throughput import instructions

        return instructions.run(cell)

    def prime(self, cell: Cell) -> None:
        """Once per worker and model setting: one step at a tiny length, untimed, so that one-time
        costs of the model's ops (lazy kernel init, library scratch buffers) land in no cell's
        time or peak memory."""
        key = cell.group_key
        if key in _PRIMED:
            return
        from gam_bench.tasks.throughput import measure

        settings = {"warmup": 0, "repeats": 1, "min_run_time_s": 0.0, "max_repeats": 1}
        # eager: a compile at the priming length would be a second compile nobody measures
        update = {
            "seq_len": min(cell.seq_len, PRIME_SEQ_LEN),
            "measure": cell.measure.model_copy(update=settings),
            "compile": "eager",
            "cuda_graph": False,
        }
        measure.run(cell.model_copy(update=update))
        _PRIMED.add(key)


TASK = Throughput()
