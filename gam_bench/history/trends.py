"""Trends: one series of commit points per cell and gate metric, with its change points.

A cell's metrics are its task's `gate_metrics`. Each commit's point pools the values of all
its rows of the cell (several runs, `check --rounds`, base and head folders): a column of lists
(the time samples) is pooled sample by sample, a scalar column row by row; the point is their
median with the interquartile range. A `memory` metric trends live tensor bytes where every row
of the cell has them (deterministic), else the measured peak (noisy), as the gate does.

No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gam_bench.analysis.rows import TENSOR_MEMORY, frame_memory_column, present
from gam_bench.history.commits import Commit, commit_key
from gam_bench.history.steps import MIN_STEP, Step, deterministic_steps, timed_steps
from gam_bench.tasks import get_task
from gam_bench.tasks.base import GateMetric


@dataclass
class Trend:
    """One cell's values of one metric over the commits that measured it, in commit order."""

    series: str  # the cell's key across commits (rows.series_key)
    label: str
    model: str
    task: str
    metric: GateMetric
    column: str  # the column trended (the memory metric resolves it)
    deterministic: bool
    commits: list[Commit]
    median: np.ndarray
    q25: np.ndarray
    q75: np.ndarray
    rows: np.ndarray  # rows pooled into each point
    load: np.ndarray  # the machine's mean 1-minute load average over those rows (NaN: unknown)
    steps: list[Step] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.metric.name

    def regression(self, step: Step) -> bool:
        """Whether `step` went the metric's worse way."""
        return (step.size > 0) == (self.metric.better == "lower")


def build_trends(rows: pd.DataFrame, commits: list[Commit], min_step: float = MIN_STEP) -> list[Trend]:
    """Every (cell, gate metric) trend of `rows` with at least one point, change points found."""
    position = {commit.key: i for i, commit in enumerate(commits)}
    keys = [commit_key(sha, dirty) for sha, dirty in zip(rows["git_sha"], rows["git_dirty"])]
    rows = rows.assign(_commit=keys)
    trends = []
    for series, cell in rows.groupby("series", sort=True):
        task = str(cell["task"].iloc[0])
        for metric in get_task(task).gate_metrics:
            trend = _trend(series, cell, task, metric, commits, position)
            if trend is not None:
                trend.steps = _steps(trend, min_step)
                trends.append(trend)
    return trends


def _trend(series, cell, task, metric, commits, position) -> Trend | None:
    column = frame_memory_column(cell) if metric.kind == "memory" else metric.column
    if column not in cell:
        return None
    points = []
    for key, group in cell.groupby("_commit"):
        values = _values(group[column])
        if values.size:
            load = group["load_avg_1m"].dropna()
            points.append(
                (position[key], *np.percentile(values, [50, 25, 75]), len(group), load.mean() if len(load) else np.nan)
            )
    if not points:
        return None
    points.sort()
    index, median, q25, q75, count, load = (np.array(v) for v in zip(*points))
    deterministic = metric.deterministic and (metric.kind != "memory" or column == TENSOR_MEMORY)
    return Trend(
        series, str(cell["label"].iloc[0]), str(cell["model"].iloc[0]), task, metric, column, deterministic,
        [commits[i] for i in index], median, q25, q75, count.astype(int), load,
    )  # fmt: skip


def _values(column: pd.Series) -> np.ndarray:
    """The finite values of a column's cells: list cells pooled, scalars as they are."""
    out: list[float] = []
    for value in column:
        if hasattr(value, "tolist") and not np.isscalar(value):
            value = value.tolist()
        out.extend(float(v) for v in (value if isinstance(value, list) else [value]) if present(v))
    values = np.array(out, dtype=float)
    return values[np.isfinite(values)]


def _steps(trend: Trend, min_step: float) -> list[Step]:
    if trend.deterministic:
        return deterministic_steps(trend.median, trend.metric.threshold)
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = np.where(trend.median > 0, (trend.q75 - trend.q25) / trend.median, 0.0)
    return timed_steps(trend.median, spread, min_step)
