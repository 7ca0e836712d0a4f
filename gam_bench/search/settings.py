"""The `search:` section of a suite file: how the longest length that fits is searched.

    search:
      start: 1024            # first length probed; doubled while cells run ok
      max_seq_len: 1048576   # doubling stops here: a model ok there "fits at least this"
      precision: 0.05        # bisection stops when (first failure - last success) <= 5% of the success
      multiple_of: 64        # every probed length is a multiple of it (and the finest step)
      budget_s: null         # per model setting: no new probe once its probes took this long

The memory cap is the suite's `limits` (`mem_cap_gb`, else `mem_cap_fraction` of the device's
memory) and the per-probe time budget its `limits.timeout_s`, as for any cell. No torch here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field, PositiveInt, model_validator

from gam_bench.errors import UserError
from gam_bench.settings import Strict


class SearchSettings(Strict):
    """How the runner searches the longest seq_len under the suite's limits (see the module docstring)."""

    start: PositiveInt = 1024
    max_seq_len: PositiveInt = 1_048_576
    precision: float = Field(0.05, gt=0, lt=1)
    multiple_of: PositiveInt = 64
    budget_s: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> SearchSettings:
        if self.start % self.multiple_of:
            raise ValueError(f"start ({self.start}) is not a multiple of multiple_of ({self.multiple_of})")
        if self.max_seq_len < self.start:
            raise ValueError(f"max_seq_len ({self.max_seq_len}) is below start ({self.start})")
        if self.max_seq_len % self.multiple_of:
            raise ValueError(f"max_seq_len ({self.max_seq_len}) is not a multiple of multiple_of ({self.multiple_of})")
        return self

    def tolerance(self, fits: int) -> int:
        """The gap (tokens) at which bisection stops above a length that fits."""
        return max(int(self.precision * fits), self.multiple_of)

    def key(self) -> str:
        """The settings as the stored rows' `search` column holds them (canonical JSON)."""
        return self.model_dump_json()


def check_search(config: Any, raw: dict[str, Any], where: Callable[[list[Any]], str]) -> None:
    """Load-time checks of a suite with a `search:` section; UserError naming file, field and value.
    where(loc): the text locating a field (gam_bench.suite.loading)."""
    from gam_bench.tasks import all_tasks, get_task

    axes = raw.get("axes")
    if isinstance(axes, dict) and "seq_len" in axes:
        raise UserError(
            f"{where(['axes', 'seq_len'])}: {axes['seq_len']!r} given with a 'search:' section, which searches "
            "seq_len itself; remove axes.seq_len (search.start is the first length probed)"
        )
    task = get_task(config.task)
    if not task.capabilities.search:
        takers = " and ".join(t.name for t in all_tasks() if t.capabilities.search)
        raise UserError(f"{where(['search'])}: task {task.name!r} cannot be searched (search: is for {takers} suites)")
    if config.measure.processes != 1:
        raise UserError(
            f"{where(['measure', 'processes'])}: {config.measure.processes} with a 'search:' section; "
            "each probe runs once, in one fresh worker: use 1"
        )
    if config.measure.instructions:
        raise UserError(f"{where(['measure', 'instructions'])}: true with a 'search:' section; probes count nothing")
