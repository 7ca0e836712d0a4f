"""The throughput section of report.md: per group (device, level, mode, dtype, batch size)
the scaling figures, the paper's Table 2 layout, scaling exponents and crossovers.

No torch here.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd

from gam_bench.analysis.scaling import BOOT_SEED, CONFIDENCE, N_BOOT, WINDOW_RULE
from gam_bench.report import audit, roofline, tables
from gam_bench.report.curves import Group, build_groups
from gam_bench.report.plots import save_png, scaling_figure

METRIC_TITLES = {"time": "Time", "memory": "Peak memory", "throughput": "Throughput"}


def labels(rows: pd.DataFrame) -> list[str]:
    """The series labels of the throughput figures (for the report's shared palette)."""
    return [s.label for g in build_groups(rows) for s in g.series]


def section(rows: pd.DataFrame, out_dir: Path, figures: str, colors: dict[str, str]) -> str:
    """One section per throughput group ("" without throughput rows)."""
    return "\n".join(_group(g, out_dir, figures, colors).rstrip("\n") + "\n" for g in build_groups(rows))


def heading(group: Group) -> str:
    """The title of a group's section (the HTML report puts its interactive plot under it)."""
    return f"Throughput: {group.key.title}"


def _group(group: Group, out_dir: Path, figures: str, colors: dict[str, str]) -> str:
    images = []
    for metric, title in METRIC_TITLES.items():
        name = f"{group.key.slug}-{metric}.png"
        save_png(scaling_figure(group, metric, colors), out_dir / figures / name)
        images.append(f"![{title} vs sequence length, {group.key.title}]({figures}/{name})")
    crossings = tables.crossovers(group) if group.crossovers else "Fewer than two models share a length.\n"
    mfu = roofline.has_mfu(group)  # fraction of peak, when the rows carry it
    if mfu:
        images.append(roofline.figure_markdown(group, out_dir, figures, colors))
    shown = [*METRIC_TITLES, *(["mfu"] if mfu else [])]
    images.append(_vector_links(group, figures, shown))
    return "\n".join(
        [
            f"## {heading(group)}\n",
            "\n".join(images) + "\n",
            "### Time and peak memory by length (paper Table 2, split)\n",
            "A row per model, a column per sequence length; a failed cell shows its status.\n",
            tables.table2(group, mfu=mfu),
            "### Scaling exponents\n",
            "Slope of log time and of log peak memory against log length over the window (see [method](#method)).\n",
            tables.exponents(group),
            "### Crossovers\n",
            crossings,
            *([audit.audit_markdown(group)] if audit.has_audit(group) else []),
        ]
    )


def _vector_links(group: Group, figures: str, metrics: list[str]) -> str:
    """A line linking the SVG beside each PNG (for papers and slides)."""
    names = {**METRIC_TITLES, "mfu": "fraction of peak"}
    links = " · ".join(f"[{names[m].lower()}]({figures}/{group.key.slug}-{m}.svg)" for m in metrics)
    return f"\nVector (SVG) versions: {links}\n"


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=90, subsequent_indent="  ", break_on_hyphens=False)


METHOD = f"""- **Time** is the median of a cell's timed repeats; error bars and bands span the
  interquartile range (25th to 75th percentile). Throughput is batch × length / time.
{_wrap(f"- **Fit window**: {WINDOW_RULE}.")}
- **Time slope interval**: {CONFIDENCE:.0%} percentile bootstrap ({N_BOOT} resamples, seed
  {BOOT_SEED}): every length's stored repeats are resampled with replacement and their
  medians refitted. It covers timing noise, not the choice of window; a low R² says the
  window is not a clean power law (noise, or a cost that changes regime).
- **Memory slope**: peak memory is measured once per cell, so its slope has no interval.
- **Crossover**: the last length where the order of two models' median times changes,
  interpolated linearly in log-log between the two measured lengths around it ("measured");
  otherwise where the two fitted power laws meet beyond the longest length both ran
  ("extrapolated"), if they do. A measured crossover is a finding only where the two
  curves' interquartile ranges are disjoint at some common length on each side of it;
  otherwise it is "within noise" and not drawn. The time figure marks the others with a
  dotted line and a letter (A, B, ...) that the legend and the crossover table name.
- **Failed cells** (✕ with their status, e.g. OOM) are drawn at their length, on the
  curve's trend continued from its last two successful lengths: the height is a guide for
  the eye, not a measurement.
"""
