"""Complexity figures: time, peak memory and tokens/s against sequence length, log-log.

Sizes, style, palette and output (PNG with SVG beside it) are `figure`'s. Each curve has its
own marker and dash pattern (hollow markers), so curves that lie on each other stay visible.
Crossovers are never text on the plot: a separated crossover (`crossings`) is a dotted line
with a letter above the axes, named in the legend and the crossover table. Every function
returns the `Figure`; tests inspect its artists, found by `gid`:
  "series:<label>"       the measured curve of one model (median, IQR error bars)
  "fit:<label>"          the fitted power law over its window
  "failed:<label>"       ✕ markers at lengths where the model's cell did not finish ok
  "crossover:<a>|<b>"    a vertical line at a separated measured crossover length
  "fits:<label>"         a dotted vertical line at the longest length that fits (report/fit.py)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullLocator

from gam_bench.analysis import ExponentFit
from gam_bench.report import crossings
from gam_bench.report.curves import Group, Series
from gam_bench.report.figure import (
    current_size,
    legend_below,
    new_figure,
    palette,
    plot_style,
    save_png,
    series_style,
)
from gam_bench.report.tables import MIB, fmt_len, status_label

__all__ = ["METRICS", "Metric", "new_figure", "palette", "plot_style", "save_png", "scaling_figure"]


@dataclass(frozen=True)
class Metric:
    name: str
    column: str
    low: str | None  # IQR columns (None: no repeats)
    high: str | None
    scale: float
    ylabel: str
    title: str


METRICS = {
    "time": Metric("time", "time_ms", "time_q25", "time_q75", 1.0, "Median time per call (ms)", "Time"),
    "memory": Metric("memory", "peak_mem_bytes", None, None, 1 / MIB, "Peak memory (MiB)", "Peak memory"),
    "throughput": Metric(
        "throughput", "tokens_per_s", "tps_q25", "tps_q75", 1.0, "Throughput (tokens/s)", "Throughput"
    ),
    "mfu": Metric("mfu", "mfu", None, None, 1.0, "Fraction of matmul peak (FLOP/s / peak)", "Fraction of peak"),
}


def scaling_figure(group: Group, metric: str, colors: dict[str, str], fits: dict[str, int] | None = None) -> Figure:
    """One metric of one group against sequence length, a curve per model, the legend below.
    fits: series label -> its longest length that fits under a cap (a search's answer, report/fit.py)."""
    m = METRICS[metric]
    marks = crossings.letters(group) if metric == "time" else {}
    with plot_style():
        fig, ax = new_figure()
        for i, s in enumerate(group.series):
            fit = {"time": s.time_fit, "memory": s.mem_fit}.get(metric)
            _draw_series(ax, s, m, fit, colors[s.label], i)
            _draw_failed(ax, s, m, colors[s.label], i)
        handles = _draw_crossovers(ax, group, marks) + _draw_fits(ax, fits or {}, colors)
        _finish_axes(fig, ax, group, m, handles)
        if fits:  # the x range shows every marker
            low, high = ax.get_xlim()
            ax.set_xlim(low, max(high, max(fits.values()) * 1.3))
        if not any(len(_values(s, m)[0]) for s in group.series):
            ax.set_ylim(1, 10)  # a log axis needs a positive range even with nothing measured
            ax.text(0.5, 0.5, "no cell finished ok", transform=ax.transAxes, ha="center", color="0.4")
    return fig


def _values(s: Series, m: Metric) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, y_low, y_high) of the ok points with a value; low/high = y without an IQR."""
    ok = s.ok[s.ok[m.column].notna() & (s.ok[m.column].astype(float) > 0)]  # log axes
    x = ok["seq_len"].to_numpy(float)
    y = ok[m.column].to_numpy(float) * m.scale
    low = ok[m.low].to_numpy(float) * m.scale if m.low else y
    high = ok[m.high].to_numpy(float) * m.scale if m.high else y
    return x, y, np.where(np.isnan(low), y, low), np.where(np.isnan(high), y, high)


def _draw_series(ax, s: Series, m: Metric, fit: ExponentFit | None, color: str, index: int) -> None:
    x, y, low, high = _values(s, m)
    label = s.label if fit is None else f"{s.label} (slope {fit.slope:.2f})"
    yerr = [np.clip(y - low, 0, None), np.clip(high - y, 0, None)] if m.low else None  # IQR
    style = series_style(index)
    bars = ax.errorbar(x, y, yerr=yerr, capsize=2, color=color, label=label, zorder=3, **style)
    bars.lines[0].set_gid(f"series:{s.label}")
    if fit is not None:  # a broad pale stroke under the curve: the trend, not a second curve
        wx = np.array([fit.window[0], fit.window[-1]], dtype=float)
        ax.plot(
            wx,
            fit.predict(wx) * m.scale,
            linestyle="-",
            linewidth=current_size().font / 1.5,
            color=color,
            alpha=0.18,
            solid_capstyle="butt",
            gid=f"fit:{s.label}",
            label="_nolegend_",
            zorder=2,
        )


def _draw_failed(ax, s: Series, m: Metric, color: str, index: int) -> None:
    """An ✕ labelled with the status at each failed length, on the curve's trend."""
    failed = s.failed
    if failed.empty:
        return
    x, y, _, _ = _values(s, m)
    fx = failed["seq_len"].to_numpy(float)
    if len(x):
        fy, transform = _extrapolate(x, y, fx), ax.transData
    else:  # nothing ran: stack the markers near the top of the axes
        fy, transform = np.full(len(fx), 0.95 - 0.06 * index), ax.get_xaxis_transform()
    ax.plot(
        fx,
        fy,
        linestyle="none",
        marker="x",
        markersize=7,
        markeredgewidth=1.8,
        color=color,
        transform=transform,
        gid=f"failed:{s.label}",
        label="_nolegend_",
    )
    for xi, yi, status in zip(fx, fy, failed["status"]):
        ax.annotate(
            status_label(status),
            (xi, yi),
            xycoords=transform,
            textcoords="offset points",
            xytext=(4, 3),
            fontsize=6,
            color=color,
        )


def _extrapolate(x: np.ndarray, y: np.ndarray, fx: np.ndarray) -> np.ndarray:
    """Continue the last measured segment (log-log) to lengths fx; flat from one point."""
    if len(x) < 2:
        return np.full(len(fx), y[-1])
    slope = np.log(y[-1] / y[-2]) / np.log(x[-1] / x[-2])
    slope = float(np.clip(slope, -3, 3)) if np.isfinite(slope) else 0.0
    return y[-1] * (fx / x[-1]) ** slope


# Letters of crossovers closer than this factor in length share one label ("A,B").
LETTER_CLUSTER = 1.3


def _draw_crossovers(ax, group: Group, marks: dict[tuple[str, str], str]) -> list[Line2D]:
    """A dotted line per marked crossover, its letter above the axes; legend handles for them."""
    marked = sorted((c for c in group.crossovers if (c.a, c.b) in marks), key=lambda c: marks[(c.a, c.b)])
    handles = []
    for c in marked:
        letter = marks[(c.a, c.b)]
        ax.axvline(c.seq_len, color="0.35", linestyle=":", linewidth=1.0, gid=f"crossover:{c.a}|{c.b}", zorder=1)
        label = f"{letter}: {c.a} = {c.b} at ≈ {fmt_len(round(c.seq_len))}"
        handles.append(Line2D([], [], color="0.35", linestyle=":", linewidth=1.0, label=label))
    for x, text in _letter_clusters([(c.seq_len, marks[(c.a, c.b)]) for c in marked]):
        ax.annotate(
            text,
            (x, 1.0),
            xycoords=ax.get_xaxis_transform(),
            textcoords="offset points",
            xytext=(0, 1.5),
            ha="center",
            va="bottom",
            fontsize=current_size().font * 0.85,
            fontweight="bold",
            color="0.25",
            gid="crossover-letters",
        )
    return handles


def _letter_clusters(points: list[tuple[float, str]]) -> list[tuple[float, str]]:
    """(x, letter) sorted by x -> (x, "A,B") with letters closer than LETTER_CLUSTER merged."""
    clusters: list[list[tuple[float, str]]] = []
    for x, letter in sorted(points):
        if clusters and x / clusters[-1][0][0] < LETTER_CLUSTER:
            clusters[-1].append((x, letter))
        else:
            clusters.append([(x, letter)])
    return [(float(np.exp(np.mean(np.log([x for x, _ in c])))), ",".join(t for _, t in c)) for c in clusters]


def _draw_fits(ax, fits: dict[str, int], colors: dict[str, str]) -> list[Line2D]:
    """A dotted vertical line per model at its longest length that fits; the legend entry for them."""
    for label, seq_len in sorted(fits.items()):
        ax.axvline(seq_len, color=colors.get(label, "0.3"), linestyle=(0, (1, 2)), linewidth=1.4, gid=f"fits:{label}")
    if not fits:
        return []
    return [Line2D([], [], color="0.2", linestyle=(0, (1, 2)), label="longest length that fits")]


def _finish_axes(fig: Figure, ax, group: Group, m: Metric, crossing_handles: list[Line2D]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    lengths = sorted({int(n) for s in group.series for n in s.points["seq_len"]})
    if lengths:
        failed = any(not s.failed.empty for s in group.series)
        ax.set_xlim(lengths[0] / 1.25, lengths[-1] * (2.0 if failed else 1.3))  # room for status labels
        ticks = lengths[:: max(1, len(lengths) // 8)]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.set_xticklabels([fmt_len(n) for n in ticks])
        ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("Sequence length (tokens)")
    ax.set_ylabel(m.ylabel)
    ax.set_title(f"{m.title} vs sequence length\n{group.key.title}", pad=current_size().font * 1.4)
    handles, _ = ax.get_legend_handles_labels()
    if any(not s.failed.empty for s in group.series):
        handles.append(Line2D([], [], linestyle="none", marker="x", color="0.2", label="failed cell (status)"))
    legend_below(fig, ax, handles + crossing_handles)
