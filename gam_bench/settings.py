"""The settings a suite and a cell share: level, dtype, execution mode, device, how a cell is
timed (`Measure`) and its limits (`Limits`). The suite file's format (gam_bench.suite) and
the cell (gam_bench.cell) both use them; neither depends on the other for them.

No torch here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gam_bench.devices import DEVICE_CHOICES

Level = Literal["block", "lm"]
TRAINING_MODES = ("forward", "forward_backward", "train_step")  # the modes of a task that trains or times steps
DType = Literal["float32", "bfloat16", "float16"]
Compile = Literal["eager", "default", "reduce-overhead", "max-autotune"]  # torch.compile modes (execution)
Device = Literal[DEVICE_CHOICES]  # type: ignore[valid-type]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Measure(Strict):
    """How a cell is timed.

    warmup untimed steps, then at least `repeats` timed steps; if `min_run_time_s` > 0, timed
    steps continue until their total reaches it (never more than `max_repeats`). Every timed
    step is stored. `flops`: count FLOPs of one (untimed) step with torch.utils.flop_counter.

    `processes` (pyperf's practice): the sweep makes that many passes over its cells, each pass
    in fresh worker processes, each doing the warmup and timed steps above; a cell's row is
    written after its last pass and keeps every sample (in pass order), each process's median
    (`process_medians_ms`) and reports the median of all samples. So a cell's samples come
    from several processes and from moments a whole pass apart: on a shared machine a small
    cell's time sits at one level for a second or more, so the samples of one burst share
    their level whatever their number (runner/processes.py; docs/methodology/cell.md).
    Each pass costs a worker start (torch import and priming) plus every cell's build and
    warmup again. Default 1: one pass, the cheapest; suites/ci.yaml
    (the gate) uses more. Only for tasks whose capabilities allow it (pre-flight refuses it
    elsewhere). Added after the other fields: it is part of the cell_id only when not 1 (cell.py).

    `instructions` (CPU throughput cells, eager): also count the instructions of
    `instruction_steps` steps (after one warm-up step) in one more worker started under
    valgrind's callgrind, counting only around each step (measure/instructions.py,
    runner/counting.py): the row's `instructions` (median) and `instructions_samples`, a
    deterministic cost the gate judges with a tight threshold and no significance test. Where
    valgrind is missing or too old the row records why (`instructions_reason`). Both are in the
    cell_id only when not at their default.
    """

    warmup: int = Field(5, ge=0)
    repeats: int = Field(20, ge=1)
    min_run_time_s: float = Field(0.0, ge=0)
    max_repeats: int = Field(1000, ge=1)
    flops: bool = True
    processes: int = Field(1, ge=1)
    instructions: bool = False
    instruction_steps: int = Field(3, ge=1, le=100)

    @model_validator(mode="after")
    def _repeats_within_max(self) -> Measure:
        if self.max_repeats < self.repeats:
            raise ValueError(f"max_repeats ({self.max_repeats}) is below repeats ({self.repeats})")
        return self


class Limits(Strict):
    """Per-cell limits: a wall-clock timeout (whole cell: build, warmup, timing) and a memory cap.

    The memory cap is `mem_cap_gb` GiB if given, else `mem_cap_fraction` of the machine's RAM
    (CPU: the worker's address-space limit above its idle size; GPU: the allocator's share).
    """

    timeout_s: float = Field(600.0, gt=0)
    mem_cap_gb: float | None = Field(None, gt=0)
    mem_cap_fraction: float = Field(0.75, gt=0, le=1)
