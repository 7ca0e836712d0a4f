"""Settings of the performance-regression gate: the `regression:` section of a suite file.

```yaml
regression:
  time_threshold: 0.10   # a cell is a time regression only if its median is >= 10% slower ...
  mem_threshold: 0.05    # ... or a memory regression if its peak memory is >= 5% higher
  mem_floor_mib: 2.0     #     and at least 2 MiB higher (CPU peak RSS moves by ~1 MiB run to run)
  alpha: 0.01            # ... and (time only) a Mann-Whitney U test rejects "no change" at this level
  control: true          # times relative to the control kernel, where both rows timed it
  time: true             # judge time at all (false: the deterministic metrics alone decide)
  # deterministic metrics: one count per cell, no noise, so no significance test; a regression
  # if the count grows by at least this fraction (both rows must have the column)
  instructions_threshold: 0.01    # `instructions` (callgrind, measure.instructions)
  tensor_bytes_threshold: 0.01    # `peak_tensor_bytes` (replaces mem_threshold/floor where both rows have it)
  flops_threshold: 0.01           # `flops`
  ops_threshold: 0.01             # `dispatched_ops`
```

`control`: each throughput row stores `control_ms`, a fixed matmul timed around the cell's
timing (measure/control.py). With `control: true` the candidate's samples are scaled by
baseline control / candidate control before they are judged, so a machine that runs
everything 1.4x slower for a while (this shared VM does) is not a regression, while a code
change, which moves the cell and not the matmul, still is.

Deterministic metrics are judged first, each against its own threshold; then time, with its
statistics, where `time` is on. Thresholds are fractions of the baseline value. The same
numbers can be given on the command line (`--time-threshold`, `--mem-threshold`,
`--instructions-threshold`); a flag wins over the suite file, which wins over
these defaults. No torch here: suite validation must stay light.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_TIME_THRESHOLD = 0.10
DEFAULT_MEM_THRESHOLD = 0.05
DEFAULT_MEM_FLOOR_MIB = 2.0
DEFAULT_ALPHA = 0.01
DEFAULT_COUNT_THRESHOLD = 0.01  # instructions, tensor bytes, FLOPs, dispatched ops


class RegressionSettings(BaseModel):
    """Minimum effect sizes per metric and the rank test's significance level."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time_threshold: float = Field(DEFAULT_TIME_THRESHOLD, gt=0, le=10)
    mem_threshold: float = Field(DEFAULT_MEM_THRESHOLD, gt=0, le=10)
    mem_floor_mib: float = Field(DEFAULT_MEM_FLOOR_MIB, ge=0)
    alpha: float = Field(DEFAULT_ALPHA, gt=0, lt=0.5)
    control: bool = True
    time: bool = True
    instructions_threshold: float = Field(DEFAULT_COUNT_THRESHOLD, gt=0, le=10)
    tensor_bytes_threshold: float = Field(DEFAULT_COUNT_THRESHOLD, gt=0, le=10)
    flops_threshold: float = Field(DEFAULT_COUNT_THRESHOLD, gt=0, le=10)
    ops_threshold: float = Field(DEFAULT_COUNT_THRESHOLD, gt=0, le=10)

    def with_overrides(self, **values: float | None) -> RegressionSettings:
        """A copy with every non-None value replaced, validated again."""
        given = {key: value for key, value in values.items() if value is not None}
        return RegressionSettings(**{**self.model_dump(), **given})
