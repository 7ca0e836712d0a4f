"""What every report figure shares: its size and type (a paper column or a slide), a fixed
style, a palette, and byte-stable output as PNG and SVG side by side.

Figures are built on the Agg canvas without pyplot (no global state, no display), under
matplotlib's default style plus fixed settings, so a user's matplotlibrc cannot change the
output and the same results give the same bytes (the SVG's ids are salted with a constant
and it carries no date).

Two sizes (`figure_size(name)` chooses one for the figures built inside it):
  "paper"  3.5 in wide (one column of a two-column paper), 7 pt type, PNG at 200 dpi;
  "slide"  10 in wide (a 16:9 slide), 14 pt type, PNG at 100 dpi.
"""

from __future__ import annotations

import contextlib
import contextvars
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

PNG_COLORS = 128
POINT = 1 / 72  # inches


@dataclass(frozen=True)
class FigureSize:
    name: str
    width: float  # inches
    axes_height: float  # inches
    font: float  # points
    dpi: int  # of the PNG
    legend_columns: int  # of a legend below the axes
    left: float  # inches: tick labels and the y label
    right: float  # inches

    @property
    def rc(self) -> dict[str, object]:
        return {
            "font.size": self.font,
            "axes.titlesize": self.font,
            "axes.labelsize": self.font,
            "xtick.labelsize": self.font * 0.9,
            "ytick.labelsize": self.font * 0.9,
            "legend.fontsize": self.font * 0.85,
            "lines.linewidth": self.font / 6,
            "lines.markersize": self.font / 2,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "svg.hashsalt": "gam-bench",  # stable ids in the SVG
        }


SIZES = {
    "paper": FigureSize("paper", width=3.5, axes_height=2.3, font=7.0, dpi=200, legend_columns=2, left=0.62, right=0.1),
    "slide": FigureSize(
        "slide", width=10.0, axes_height=4.6, font=14.0, dpi=100, legend_columns=3, left=1.2, right=0.2
    ),
}
DEFAULT_SIZE = "paper"
_SIZE = contextvars.ContextVar("figure_size", default=SIZES[DEFAULT_SIZE])


@contextlib.contextmanager
def figure_size(name: str) -> Iterator[FigureSize]:
    """Build the figures made inside this block at size `name` (a key of SIZES)."""
    token = _SIZE.set(SIZES[name])
    try:
        yield SIZES[name]
    finally:
        _SIZE.reset(token)


def current_size() -> FigureSize:
    return _SIZE.get()


@contextlib.contextmanager
def plot_style() -> Iterator[None]:
    """matplotlib defaults + the current size's settings, whatever the user's matplotlibrc says."""
    with matplotlib.style.context("default"), matplotlib.rc_context(current_size().rc):
        yield


def new_figure(title_lines: int = 2) -> tuple[Figure, object]:
    """A figure of the current size with one axes and room above for `title_lines` of title
    (a legend goes inside it, or below it through `legend_below`)."""
    size = current_size()
    fig = Figure(dpi=size.dpi)
    _layout(fig, title_lines, 0)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _layout(fig: Figure, title_lines: int, legend_rows: int) -> None:
    """Size the figure in inches: title, the axes at the size's height, x labels, legend rows.
    Fixed margins: constrained layout would add much of the drawing time again."""
    size = current_size()
    line = size.font * 1.3 * POINT
    top = title_lines * line + 0.12
    bottom = 2.3 * line + 0.08 + (legend_rows * size.font * 0.85 * 1.45 * POINT + 0.1 if legend_rows else 0)
    height = top + size.axes_height + bottom
    fig.set_size_inches(size.width, height)
    fig.subplots_adjust(
        left=size.left / size.width,
        right=1 - size.right / size.width,
        bottom=bottom / height,
        top=1 - top / height,
    )


def legend_columns(labels: Sequence[str]) -> int:
    """As many of the size's legend columns as the longest label lets fit across the figure."""
    size = current_size()
    font = size.font * 0.85
    longest = max((len(label) for label in labels), default=0)
    column = (longest * 0.56 + 2.6 + 0.8 + 1.2) * font  # points: text, handle, pad, spacing
    fits = int(size.width * 72 // column) if column else size.legend_columns
    return max(1, min(size.legend_columns, fits))


def legend_below(fig: Figure, ax, handles: list, title_lines: int = 2) -> None:
    """The legend under the x axis label, in as many columns as fit (`legend_columns`); the
    figure grows by its rows."""
    size = current_size()
    columns = legend_columns([h.get_label() for h in handles])
    _layout(fig, title_lines, -(-len(handles) // columns))
    below = (2.3 * size.font * 1.3 * POINT + 0.06) / size.axes_height
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -below),
        ncol=columns,
        frameon=False,
        handlelength=2.6,
        columnspacing=1.2,
        borderaxespad=0.0,
    )


def save_png(fig: Figure, path: Path) -> Path:
    """Write `fig` as a small, byte-stable PNG (a 128-colour palette, no metadata) and, beside
    it, the same figure as SVG (`path` with .svg). Returns the PNG's path.

    Line plots use few colours, so the palette loses nothing visible and cuts the file
    to a fraction of Agg's RGBA output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with plot_style():
        fig.savefig(vector_path(path), format="svg", metadata={"Date": None})
        fig.canvas.draw()
    rgb = PIL.Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).convert("RGB")
    indexed = rgb.quantize(PNG_COLORS, method=PIL.Image.Quantize.FASTOCTREE, dither=PIL.Image.Dither.NONE)
    indexed.save(path, format="png", optimize=True)
    return path


def vector_path(png: Path | str) -> Path:
    """The SVG that `save_png` writes beside a PNG."""
    return Path(png).with_suffix(".svg")


def palette(labels: Sequence[str]) -> dict[str, str]:
    """A fixed colour per label (sorted), shared by every figure of a report: tab10's ten, then
    tab20's light shades of them, so up to 20 labels (the O(N) field's suite draws 12) never
    share a colour; beyond 20 the colours repeat."""
    dark = matplotlib.colormaps["tab10"].colors
    light = matplotlib.colormaps["tab20"].colors[1::2]
    colors = [*dark, *light]
    return {label: matplotlib.colors.to_hex(colors[i % 20]) for i, label in enumerate(sorted(set(labels)))}


# Distinct markers and line styles: curves that lie on top of each other (GAM and the
# Transformer's memory, the two Mamba blocks) stay visible as two shapes and two dash patterns.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
LINESTYLES = ("-", "--", "-.", ":")


def series_style(index: int) -> dict[str, object]:
    """Marker, dashes and hollow faces of the index-th curve of a figure."""
    return {
        "marker": MARKERS[index % len(MARKERS)],
        "linestyle": LINESTYLES[index % len(LINESTYLES)],
        "markerfacecolor": "none",
        "markeredgewidth": current_size().font / 7,
    }
