"""Complexity figures: time, peak memory and tokens/s against sequence length, log-log.

Figures are built on the Agg canvas without pyplot (no global state, no display), under
matplotlib's default style plus a few fixed settings, so a user's matplotlibrc cannot
change the output and the same results give the same PNG bytes. Every function returns
the `Figure`; tests inspect its artists, found by `gid`:
  "series:<label>"       the measured curve of one model (median, IQR error bars)
  "fit:<label>"          the fitted power law over its window
  "failed:<label>"       ✕ markers at lengths where the model's cell did not finish ok
  "crossover:<a>|<b>"    a vertical line at a measured crossover length
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.colors
import matplotlib.style
import numpy as np
import PIL.Image
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullLocator

from gam_bench.analysis import ExponentFit
from gam_bench.report.curves import Group, Series
from gam_bench.report.tables import MIB, fmt_len, status_label

FIGSIZE = (6.0, 4.0)
DPI = 100
PNG_COLORS = 128
MARGINS = {"left": 0.12, "right": 0.97, "bottom": 0.12, "top": 0.88}
RC = {
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 7,
    "svg.hashsalt": "gam-bench",
}


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


@contextlib.contextmanager
def plot_style() -> Iterator[None]:
    """matplotlib defaults + RC, whatever the user's matplotlibrc says."""
    with matplotlib.style.context("default"), matplotlib.rc_context(RC):
        yield


def new_figure() -> tuple[Figure, object]:
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    fig.subplots_adjust(**MARGINS)  # fixed: constrained layout costs ~40% of the drawing time
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def save_png(fig: Figure, path: Path) -> Path:
    """Write `fig` as a small, byte-stable PNG: a 128-colour palette, no metadata.

    Line plots use few colours, so the palette loses nothing visible and cuts the file
    to a fraction of Agg's RGBA output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with plot_style():
        fig.canvas.draw()
    rgb = PIL.Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).convert("RGB")
    indexed = rgb.quantize(PNG_COLORS, method=PIL.Image.Quantize.MEDIANCUT, dither=PIL.Image.Dither.NONE)
    indexed.save(path, format="png", optimize=True)
    return path


def palette(labels: Sequence[str]) -> dict[str, str]:
    """A fixed colour per label (sorted), shared by every figure of a report: tab10's ten, then
    tab20's light shades of them, so up to 20 labels (the O(N) field's suite draws 12) never
    share a colour; beyond 20 the colours repeat."""
    dark = matplotlib.colormaps["tab10"].colors
    light = matplotlib.colormaps["tab20"].colors[1::2]
    colors = [*dark, *light]
    return {label: matplotlib.colors.to_hex(colors[i % 20]) for i, label in enumerate(sorted(set(labels)))}


def scaling_figure(group: Group, metric: str, colors: dict[str, str]) -> Figure:
    """One metric of one group against sequence length, a curve per model."""
    m = METRICS[metric]
    with plot_style():
        fig, ax = new_figure()
        for i, s in enumerate(group.series):
            fit = {"time": s.time_fit, "memory": s.mem_fit}.get(metric)
            _draw_series(ax, s, m, fit, colors[s.label])
            _draw_failed(ax, s, m, colors[s.label], i)
        if metric == "time":
            _draw_crossovers(ax, group)
        _finish_axes(ax, group, m)
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


def _draw_series(ax, s: Series, m: Metric, fit: ExponentFit | None, color: str) -> None:
    x, y, low, high = _values(s, m)
    label = s.label if fit is None else f"{s.label} (slope {fit.slope:.2f})"
    yerr = [np.clip(y - low, 0, None), np.clip(high - y, 0, None)] if m.low else None  # IQR
    bars = ax.errorbar(x, y, yerr=yerr, marker="o", markersize=4, capsize=2, linewidth=1.2, color=color, label=label)
    bars.lines[0].set_gid(f"series:{s.label}")
    if fit is not None:
        wx = np.array([fit.window[0], fit.window[-1]], dtype=float)
        ax.plot(
            wx,
            fit.predict(wx) * m.scale,
            linestyle="--",
            linewidth=0.9,
            color=color,
            alpha=0.8,
            gid=f"fit:{s.label}",
            label="_nolegend_",
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


# With more curves than this (the O(N) field's suite draws 12), only crossovers with GAM, the
# benchmark's subject, are drawn: every pair's would bury the plot. The table lists them all.
CROSSOVER_LINES_MAX_SERIES = 5


def drawn_crossovers(group: Group) -> list:
    """The measured crossovers the time plot marks (all, or GAM's when there are many curves)."""
    measured = [c for c in group.crossovers if c.kind == "measured"]
    if len(group.series) <= CROSSOVER_LINES_MAX_SERIES:
        return measured
    return [c for c in measured if "gam" in (c.a, c.b)]


def _draw_crossovers(ax, group: Group) -> None:
    for c in drawn_crossovers(group):
        ax.axvline(c.seq_len, color="0.4", linestyle=":", linewidth=0.9, gid=f"crossover:{c.a}|{c.b}")
        ax.text(
            c.seq_len,
            0.03,
            f" {c.a} = {c.b} at ≈{fmt_len(round(c.seq_len))}",
            rotation=90,
            transform=ax.get_xaxis_transform(),
            fontsize=6,
            color="0.3",
            va="bottom",
            ha="right",
            bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 0.5},
        )


def _finish_axes(ax, group: Group, m: Metric) -> None:
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    lengths = sorted({int(n) for s in group.series for n in s.points["seq_len"]})
    if lengths:
        ax.set_xlim(lengths[0] / 1.25, lengths[-1] * 1.5)  # room for status labels at the ends
        ticks = lengths[:: max(1, len(lengths) // 8)]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.set_xticklabels([fmt_len(n) for n in ticks])
        ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("Sequence length (tokens)")
    ax.set_ylabel(m.ylabel)
    ax.set_title(f"{m.title} vs sequence length\n{group.key.title}")
    handles, labels = ax.get_legend_handles_labels()
    if any(not s.failed.empty for s in group.series):
        handles.append(Line2D([], [], linestyle="none", marker="x", color="0.2", label="failed cell (status)"))
    ax.legend(handles=handles, loc="best", frameon=True)
