"""The roofline section of a throughput group: each model's achieved fraction of this machine's peak.

`mfu` = a cell's FLOP/s over the dense-matmul peak that `gam-bench calibrate` measured for its
dtype on this machine (stored per row as `peak_flops_per_s`). Compiled and eager cells of a model
are separate series (curves.py), so the figure shows what compile does to the fraction of peak.
A group whose rows carry no `mfu` (no calibration, `calibrate: false`, or no FLOP count) has no
roofline section, and the Table-2 layout shows no MFU column.
"""

from __future__ import annotations

from pathlib import Path

from gam_bench.report.curves import Group
from gam_bench.report.plots import save_png, scaling_figure

CAPTION = (
    "Fraction of peak: each cell's FLOP/s (torch.utils.flop_counter, eager FLOPs) over this "
    "machine's measured dense-matmul peak for the dtype (`gam-bench calibrate`). Attention is "
    "counted as the full T x T matmuls that naive attention computes, so a causal kernel that "
    "skips the masked half (SDPA's flash path) can exceed 1."
)


def has_mfu(group: Group) -> bool:
    """True when some ok point of the group has a fraction of peak."""
    return any(s.ok["mfu"].notna().any() for s in group.series)


def figure_markdown(group: Group, out_dir: Path, figures: str, colors: dict[str, str]) -> str:
    """Write the fraction-of-peak figure of `group` and return its Markdown (image and caption)."""
    name = f"{group.key.slug}-mfu.png"
    save_png(scaling_figure(group, "mfu", colors), out_dir / figures / name)
    return f"![Fraction of peak vs sequence length, {group.key.title}]({figures}/{name})\n\n{CAPTION}\n"
