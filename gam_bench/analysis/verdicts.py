"""What a comparison concludes: the verdict names and the result types of `gam-bench compare`.

No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gam_bench.analysis.compare_settings import RegressionSettings

REGRESSION = "regression"
IMPROVEMENT = "improvement"
UNCHANGED = "unchanged"
NEW_FAILURE = "new failure"
FIXED = "fixed"
STILL_FAILING = "still failing"
ONLY_BASELINE = "only in baseline"
ONLY_CANDIDATE = "only in candidate"
NOT_CONFIRMED = "not confirmed"  # failed in some of several comparisons only (see analysis.runs.confirm)

FAILING_VERDICTS = (REGRESSION, NEW_FAILURE)  # these make the gate fail (exit 1)


@dataclass(frozen=True)
class MetricResult:
    """One metric of one cell: medians, relative change and the verdict with its basis."""

    metric: str  # "time" (ms) | "memory" (bytes) | "instructions" | "flops" | "ops" (counts per step)
    baseline: float
    candidate: float
    change: float  # candidate / baseline - 1
    verdict: str  # REGRESSION | IMPROVEMENT | UNCHANGED
    basis: str  # how the verdict was reached, e.g. "Mann-Whitney U, n=10/10"
    p_value: float | None = None
    ci: tuple[float, float] | None = None  # 95% bootstrap interval of `change`
    column: str = ""  # the stored column judged, e.g. "peak_tensor_bytes"


@dataclass(frozen=True)
class CellComparison:
    """The verdict on one cell, with what it rests on."""

    label: str
    cell_id: str
    verdict: str
    model: str = ""
    baseline_status: str | None = None
    candidate_status: str | None = None
    time: MetricResult | None = None
    memory: MetricResult | None = None
    counts: tuple[MetricResult, ...] = ()  # the task's count metrics, judged first (Task.gate_metrics, kind "count")
    matched_by: str | None = None  # "cell_id" | "config" | None (one side only)
    note: str = ""
    sort_key: tuple = field(default=(), repr=False, compare=False)


@dataclass(frozen=True)
class Comparison:
    """All cells of a baseline/candidate comparison, plus notes about the environment."""

    baseline: str
    candidate: str
    settings: RegressionSettings
    cells: list[CellComparison]
    notes: list[str] = field(default_factory=list)
    settings_source: str = "defaults"  # where the thresholds came from, shown with the rule

    def having(self, *verdicts: str) -> list[CellComparison]:
        return [cell for cell in self.cells if cell.verdict in verdicts]

    @property
    def failed(self) -> bool:
        """True when anything regressed or newly fails: the gate's exit code 1."""
        return bool(self.having(*FAILING_VERDICTS))

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for cell in self.cells:
            counts[cell.verdict] = counts.get(cell.verdict, 0) + 1
        return counts

    def controlled_cells(self) -> int:
        """How many cells' times were judged relative to the control kernel."""
        return sum(1 for cell in self.cells if cell.time is not None and cell.time.column.endswith("x control"))

    def per_process_cells(self) -> int:
        """How many cells' times were judged on per-process medians (measure.processes > 1)."""
        return sum(1 for cell in self.cells if cell.time is not None and cell.time.column.startswith("process_medians"))

    def counted_cells(self, metric: str) -> int:
        """How many cells were judged on the deterministic count `metric` (e.g. "instructions")."""
        return sum(1 for cell in self.cells if any(result.metric == metric for result in cell.counts))

    def memory_columns(self) -> list[str]:
        """The stored memory columns the cells were judged on (see analysis.rows.memory_column)."""
        return sorted({cell.memory.column for cell in self.cells if cell.memory is not None and cell.memory.column})
