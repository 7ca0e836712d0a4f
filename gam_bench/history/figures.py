"""The history's plotly figures: a cell's trend of one metric, and a metric across cells.

x is the commit (its short SHA, in the history's order, every commit of the history on the
axis so that pages line up); hovering a point shows the commit's subject and time, the median
with its interquartile range and how many rows it pools. Change points are a trace of their
own (a triangle at the new level, up or down, labelled with the step's size), so the legend can
hide them like any other series.

plotly is imported by the caller (`gam_bench.history.site`), lazily; nothing here imports it
at module level. No torch here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gam_bench.history.commits import Commit
from gam_bench.history.trends import Trend

BAND = "rgba(31, 119, 180, 0.18)"
LINE = "#1f77b4"
WORSE, BETTER = "#d62728", "#2ca02c"


def unit(column: str) -> tuple[float, str]:
    """Scale and unit shown for a column: bytes in MiB, times in ms, counts as they are."""
    if column.endswith("_bytes"):
        return 2.0**-20, "MiB"
    if column.endswith("_ms"):
        return 1.0, "ms"
    return 1.0, ""


def axis_title(trend: Trend) -> str:
    scale_unit = unit(trend.column)[1]
    return f"{trend.name} ({trend.column}{', ' + scale_unit if scale_unit else ''})"


def hover(commit: Commit) -> str:
    when = commit.time.strftime("%Y-%m-%d %H:%M UTC") if commit.time is not None else "commit time unknown"
    subject = commit.subject[:80] if commit.subject else ""
    return f"<b>{commit.short}</b> {subject}<br>{when}"


def trend_figure(go: Any, trend: Trend, commits: Sequence[Commit]) -> Any:
    """A cell's metric over the commits: median line, IQR band, change points."""
    scale, _ = unit(trend.column)
    x = [c.short for c in trend.commits]
    median, q25, q75 = trend.median * scale, trend.q25 * scale, trend.q75 * scale
    text = [
        f"{hover(c)}<br>median {m:.4g} (IQR {lo:.4g}-{hi:.4g}), {n} row{'s' if n != 1 else ''}"
        + (f", load {load:.1f}" if load == load else "")
        for c, m, lo, hi, n, load in zip(trend.commits, median, q25, q75, trend.rows, trend.load)
    ]
    fig = go.Figure()
    if not trend.deterministic:
        fig.add_trace(go.Scatter(x=x, y=q75, mode="lines", line=dict(width=0), hoverinfo="skip", showlegend=False,
                                 legendgroup="iqr"))  # fmt: skip
        fig.add_trace(go.Scatter(x=x, y=q25, mode="lines", line=dict(width=0), fill="tonexty", fillcolor=BAND,
                                 name="interquartile range", hoverinfo="skip", legendgroup="iqr"))  # fmt: skip
    fig.add_trace(go.Scatter(x=x, y=median, mode="lines+markers", name="median", line=dict(color=LINE),
                             hovertext=text, hoverinfo="text"))  # fmt: skip
    if trend.steps and not trend.deterministic:
        fig.add_trace(go.Scatter(x=x, y=_levels(trend) * scale, mode="lines", name="fitted level", hoverinfo="skip",
                                 line=dict(color="#555", dash="dash", shape="hv", width=1.5)))  # fmt: skip
    if trend.steps:
        fig.add_trace(_steps_trace(go, trend, scale))
    _layout(fig, commits, axis_title(trend))
    return fig


def _levels(trend: Trend) -> np.ndarray:
    """The piecewise-constant level the change points imply, at each commit of the trend."""
    levels = np.full(len(trend.commits), trend.steps[0].before)
    for step in trend.steps:
        levels[step.index :] = step.after
    return levels


def _steps_trace(go: Any, trend: Trend, scale: float) -> Any:
    steps = trend.steps
    worse = [trend.regression(s) for s in steps]
    return go.Scatter(
        x=[trend.commits[s.index].short for s in steps],
        y=[s.after * scale for s in steps],
        mode="markers+text",
        name="change point",
        text=[f"{s.size:+.1%}" for s in steps],
        textposition="top center",
        marker=dict(
            symbol=["triangle-up" if s.size > 0 else "triangle-down" for s in steps],
            size=14,
            color=[WORSE if w else BETTER for w in worse],
            line=dict(width=1, color="black"),
        ),
        hovertext=[
            f"{hover(trend.commits[s.index])}<br>step {s.size:+.1%}: {s.before * scale:.4g} → {s.after * scale:.4g}"
            f" ({'worse' if w else 'better'})"
            for s, w in zip(steps, worse)
        ],
        hoverinfo="text",
    )


def metric_figure(go: Any, name: str, trends: Sequence[Trend], commits: Sequence[Commit]) -> Any:
    """One metric across cells, each relative to its own first commit (1 = unchanged); one
    legend entry per cell, grouped by model, so a click hides a cell and a double click
    isolates one."""
    fig = go.Figure()
    for trend in sorted(trends, key=lambda t: t.label):
        base = trend.median[0] if trend.median[0] else 1.0
        ratio = trend.median / base
        fig.add_trace(go.Scatter(
            x=[c.short for c in trend.commits], y=ratio, mode="lines+markers", name=trend.label,
            legendgroup=trend.model, legendgrouptitle_text=trend.model,
            hovertext=[f"{trend.label}<br>{hover(c)}<br>{r:.3f}× the first commit ({m:.4g})"
                       for c, r, m in zip(trend.commits, ratio, trend.median)],
            hoverinfo="text",
        ))  # fmt: skip
    _layout(fig, commits, f"{name}, relative to each cell's first commit")
    fig.update_layout(legend=dict(groupclick="toggleitem", font=dict(size=10)), height=640)
    return fig


def _layout(fig: Any, commits: Sequence[Commit], title: str) -> None:
    fig.update_layout(
        template="plotly_white",
        height=380,
        margin=dict(l=70, r=20, t=30, b=90),
        yaxis_title=title,
        xaxis=dict(title="commit (oldest left)", type="category", categoryorder="array",
                   categoryarray=[c.short for c in commits], tickangle=-45),
        hovermode="closest",
    )  # fmt: skip
