"""Interactive plots of the throughput groups, built with plotly (validated figure JSON).

Per group, one figure per metric (time, peak memory, throughput and, where the rows carry it,
fraction of peak), each with a trace per model in the same order, so the page can switch the
metric and keep which models the reader hid. A point's hover text gives the value and its
interquartile range (time and throughput; memory and fraction of peak are one measurement
per cell). Failed cells are ✕ markers on the x axis's floor, their status in the hover text.
"""

from __future__ import annotations

import html
import json

import numpy as np
import pandas as pd

from gam_bench.report import roofline
from gam_bench.report.curves import Group, Series, build_groups
from gam_bench.report.figure import MARKERS
from gam_bench.report.plots import METRICS, Metric
from gam_bench.report.tables import fmt_len, status_label
from gam_bench.report.throughput import heading

# matplotlib marker -> plotly symbol (the same shape per model as the static figures)
SYMBOLS = {"o": "circle", "s": "square", "^": "triangle-up", "D": "diamond", "v": "triangle-down"}
SYMBOLS |= {"P": "cross", "X": "x", "<": "triangle-left", ">": "triangle-right", "h": "hexagon"}
DASHES = ("solid", "dash", "dashdot", "dot")
UNITS = {"time": "ms", "memory": "MiB", "throughput": "tokens/s", "mfu": ""}


def plots(newest: pd.DataFrame) -> dict[str, str]:
    """Section heading -> the HTML of its interactive plot, for every throughput group (of the
    grid rows, as report.md's section; the colours are report.md's)."""
    from gam_bench.report.markdown import report_colors, task_rows

    tasks = task_rows(newest)  # the rows and colours of report.md's sections
    colors = report_colors(tasks)
    throughput = next((rows for task, rows in tasks if task.name == "throughput"), newest.iloc[:0])
    return {heading(g): block(g, colors) for g in build_groups(throughput)}


def block(group: Group, colors: dict[str, str]) -> str:
    """The plot's container: metric and axes controls, the plot's div, its figures as JSON."""
    metrics = [m for m in METRICS if m != "mfu" or roofline.has_mfu(group)]
    figures = {m: figure_json(group, METRICS[m], colors) for m in metrics}
    options = "".join(f'<option value="{m}">{html.escape(METRICS[m].title)}</option>' for m in metrics)
    data = json.dumps(figures, sort_keys=True, separators=(",", ":")).replace("</", "<\\/")
    slug = html.escape(group.key.slug)
    return (
        f'<div class="interactive" data-plot="{slug}">\n'
        '<div class="controls">'
        f'<label>Metric <select class="metric" aria-label="metric">{options}</select></label> '
        '<label>Axes <select class="axes" aria-label="axes">'
        '<option value="log">log–log</option><option value="linear">linear</option></select></label>'
        '<span class="hint">Click a model in the legend to hide or show it; double-click to show it alone.</span>'
        "</div>\n"
        f'<div class="plot" id="plot-{slug}"></div>\n'
        f'<script type="application/json" class="figures">{data}</script>\n'
        "</div>\n"
    )


def figure_json(group: Group, m: Metric, colors: dict[str, str]) -> dict:
    """One metric's figure as plotly JSON (validated by plotly): traces and layout."""
    import plotly.graph_objects as go

    fig = go.Figure(layout=_layout(group, m))
    for i, s in enumerate(group.series):
        fig.add_trace(_trace(s, m, colors[s.label], i))
    floor = _failed(group, m)
    if floor is not None:
        fig.add_trace(floor)
    return json.loads(fig.to_json(validate=True))


def _trace(s: Series, m: Metric, color: str, index: int):
    import plotly.graph_objects as go

    ok = s.ok[s.ok[m.column].notna() & (s.ok[m.column].astype(float) > 0)]
    x = ok["seq_len"].to_numpy(float)
    y = ok[m.column].to_numpy(float) * m.scale
    low = ok[m.low].to_numpy(float) * m.scale if m.low else np.full(len(y), np.nan)
    high = ok[m.high].to_numpy(float) * m.scale if m.high else np.full(len(y), np.nan)
    unit = f" {UNITS[m.name]}" if UNITS[m.name] else ""
    hover = [_hover(s.label, n, v, lo, hi, m, unit) for n, v, lo, hi in zip(x, y, low, high)]
    has_iqr = bool(m.low) and bool(np.isfinite(low).any())
    return go.Scatter(
        x=x.tolist(),
        y=y.tolist(),
        name=s.label,
        legendgroup=s.label,
        mode="lines+markers",
        line={"color": color, "dash": DASHES[index % len(DASHES)], "width": 2},
        marker={
            "symbol": SYMBOLS[MARKERS[index % len(MARKERS)]] + "-open",
            "size": 8,
            "color": color,
            "line": {"width": 1.5},
        },
        error_y={
            "type": "data",
            "symmetric": False,
            "array": np.nan_to_num(np.clip(high - y, 0, None)).tolist(),
            "arrayminus": np.nan_to_num(np.clip(y - low, 0, None)).tolist(),
            "visible": has_iqr,
            "thickness": 1,
            "width": 3,
        },
        text=hover,
        hovertemplate="%{text}<extra></extra>",
    )


def _hover(label: str, n: float, v: float, lo: float, hi: float, m: Metric, unit: str) -> str:
    spread = f"<br>IQR {_num(lo)}–{_num(hi)}{unit}" if np.isfinite(lo) and np.isfinite(hi) else ""
    return f"<b>{html.escape(label)}</b><br>length {fmt_len(n)}<br>{m.title.lower()} {_num(v)}{unit}{spread}"


def _num(v: float) -> str:
    return f"{v:,.4g}" if abs(v) < 1e5 else f"{v:,.0f}"


def _failed(group: Group, m: Metric):
    """One trace of ✕ markers at the lengths where a model's cell failed (on the x axis)."""
    import plotly.graph_objects as go

    rows = [(s.label, p) for s in group.series for _, p in s.failed.iterrows()]
    if not rows:
        return None
    return go.Scatter(
        x=[float(p["seq_len"]) for _, p in rows],
        y=[0.03] * len(rows),
        yaxis="y2",  # an overlay axis from 0 to 1: the markers sit on the floor whatever the scale
        name="failed cells",
        mode="markers",
        marker={"symbol": "x", "size": 9, "color": "#555"},
        text=[
            f"<b>{html.escape(label)}</b><br>length {fmt_len(p['seq_len'])}<br>{status_label(p['status'])}"
            for label, p in rows
        ],
        hovertemplate="%{text}<extra></extra>",
    )


def _layout(group: Group, m: Metric) -> dict:
    lengths = sorted({int(n) for s in group.series for n in s.points["seq_len"]})
    return {
        "template": "none",
        "title": {"text": f"{m.title} vs sequence length<br><sub>{html.escape(group.key.title)}</sub>"},
        "xaxis": {
            "title": {"text": "Sequence length (tokens)"},
            "type": "log",
            "tickvals": lengths,
            "ticktext": [fmt_len(n) for n in lengths],
            "showgrid": True,
            "gridcolor": "#e5e5e5",
        },
        "yaxis": {"title": {"text": m.ylabel}, "type": "log", "showgrid": True, "gridcolor": "#e5e5e5"},
        "yaxis2": {"overlaying": "y", "range": [0, 1], "visible": False, "fixedrange": True},
        "legend": {"orientation": "v", "itemclick": "toggle", "itemdoubleclick": "toggleothers"},
        "hovermode": "closest",
        "margin": {"l": 70, "r": 20, "t": 70, "b": 60},
        "height": 480,
    }
