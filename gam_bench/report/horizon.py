"""Recall against distance (task recall_distance): accuracy per distance bin, intervals, horizons.

A recall_distance row is one trained cell with per-bin lists (distance_lo, distance_hi,
bin_correct, bin_trials) and its chance accuracy. As for recall, the learning rate may be
swept and each cell (model, seq_len, d_model, n_layers) keeps the run with the best overall
accuracy. The bins' intervals, tests and the effective horizon are recomputed from the counts
(gam_bench.analysis.horizon); a best-of-several-rates pick tightens the significance level by
the number of rates tried (Bonferroni), on top of the Bonferroni over the bins.

The section: a plain-words introduction, one reading per model and depth ("<model>: horizon
<bin> tokens with <n> layers"), an accuracy-vs-distance figure (a panel per model, a line per
depth, 95% intervals as error bars, chance dotted) and the table of every bin's accuracy with
its interval.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gam_bench.analysis.horizon import ALPHA, HALF_OF_BEST, Horizon, effective_horizon
from gam_bench.report.figure import SIZES, current_size, plot_style, save_png
from gam_bench.report.tables import fmt_num, markdown_table

TASK = "recall_distance"
CELL = ["model", "seq_len", "d_model", "n_layers"]
DEPTH_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]

METHOD = """- **Recall against distance**: MQAR in which every example holds one key-value pair per
  distance bin, the gap between a key and its query (in tokens) drawn uniformly among the bin's
  even distances; each cell trains from scratch for the same number of optimiser steps as every
  other model of its suite (the rows also record the seconds spent), then scores a disjoint
  test set. A bin's accuracy counts one answer per test example, so its trials are independent;
  its interval is the exact (Clopper-Pearson) 95% interval. The effective horizon is the farthest
  bin that is above chance (one-sided exact binomial test at 0.05, Bonferroni over the bins and
  the learning rates tried) and at least half as accurate as the model's best bin.
"""


def distance_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The ok rows of the recall_distance task that carry bin counts."""
    rows = df[df["task"] == TASK]
    if "status" in rows:
        rows = rows[rows["status"] == "ok"]
    rows = rows.dropna(subset=["accuracy"])
    return rows[rows["bin_trials"].map(lambda v: v is not None and len(v) > 0)].reset_index(drop=True)


def best_per_cell(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, seq_len, d_model, n_layers): the lr with the best overall accuracy (ties:
    the smaller lr), with `lrs_tried` and `result` (its analysis.horizon.Horizon)."""
    ordered = rows.sort_values([*CELL, "accuracy", "lr"], ascending=[True] * 4 + [False, True], kind="stable")
    best = ordered.drop_duplicates(CELL, keep="first").copy()
    best = best.join(rows.groupby(CELL)["lr"].nunique().rename("lrs_tried"), on=CELL)
    best["result"] = [_horizon(r) for r in best.itertuples(index=False)]
    return best.sort_values(CELL).reset_index(drop=True)


def _horizon(row) -> Horizon:
    edges = list(zip((int(v) for v in row.distance_lo), (int(v) for v in row.distance_hi)))
    correct, trials = [int(v) for v in row.bin_correct], [int(v) for v in row.bin_trials]
    return effective_horizon(edges, correct, trials, float(row.chance), ALPHA / int(row.lrs_tried))


def reading(row) -> str:
    """ "<model>: horizon <bin> tokens with <n> layers" (or "horizon none ...") for one best row."""
    h, layers = row.result, f"{int(row.n_layers)} layer{'s' if int(row.n_layers) != 1 else ''}"
    if h.horizon is None:
        return f"{row.model}: horizon none with {layers} (no distance bin is above chance at half its best)"
    return f"{row.model}: horizon {h.label} tokens with {layers}"


def readings(best: pd.DataFrame) -> str:
    """The readings as a Markdown list, grouped by (seq_len, d_model) when there are several."""
    shapes = best[["seq_len", "d_model"]].drop_duplicates().values.tolist()
    lines = []
    for seq_len, d_model in shapes:
        part = best[(best["seq_len"] == seq_len) & (best["d_model"] == d_model)]
        if len(shapes) > 1:
            lines.append(f"\nseq_len {int(seq_len)}, d_model {int(d_model)}:\n")
        lines += [f"- {reading(r)}" for r in part.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def bins_table(best: pd.DataFrame) -> str:
    """Markdown: a row per cell, a column per distance bin ("accuracy (95% CI)"), the horizon,
    steps done and training seconds."""
    labels = list(dict.fromkeys(b.label for h in best["result"] for b in sorted(h.bins, key=lambda b: b.hi)))
    headers = ["Model", "layers", "seq_len", "d_model", *labels, "Horizon", "Chance", "Steps", "Train s"]
    rows = []
    for r in best.itertuples(index=False):
        by_label = {b.label: b for b in r.result.bins}
        cells = [_bin_cell(by_label.get(label)) for label in labels]
        steps = "–" if pd.isna(r.step) else str(int(r.step))
        seconds = "–" if pd.isna(r.wall_s) else f"{r.wall_s:.0f}"
        horizon = r.result.label if r.result.horizon is None else f"**{r.result.label}**"
        rows.append([r.model, int(r.n_layers), int(r.seq_len), int(r.d_model), *cells, horizon])
        rows[-1] += [fmt_num(r.chance), steps, seconds]
    return markdown_table(headers, rows, align="lrrr" + "r" * len(labels) + "rrrr")


def _bin_cell(b) -> str:
    if b is None or b.trials == 0:
        return "–"
    mark = "" if b.above_chance else "°"
    return f"{b.accuracy:.2f}{mark} ({b.ci_low:.2f}–{b.ci_high:.2f})"


def accuracy_figure(best: pd.DataFrame) -> Figure:
    """Accuracy vs distance: a panel per model, a line per depth (and shape), 95% intervals as error
    bars, chance dotted, each line's horizon bin ringed. x: the bins in distance order, evenly spaced."""
    models = list(dict.fromkeys(best["model"]))
    cols = min(4, len(models))
    nrows = -(-len(models) // cols)
    size, k = current_size(), current_size().font / SIZES["paper"].font  # panels grow with the type
    variants = best[["n_layers", "seq_len", "d_model"]].drop_duplicates().sort_values(["n_layers", "seq_len"])
    several_shapes = len(variants[["seq_len", "d_model"]].drop_duplicates()) > 1
    his = sorted({b.hi for h in best["result"] for b in h.bins})
    where = {hi: i for i, hi in enumerate(his)}  # bin upper edge -> x position
    with plot_style():
        fig = Figure(figsize=(2.6 * k * cols, (2.2 * nrows + 0.3) * k), dpi=size.dpi)
        FigureCanvasAgg(fig)
        axes = np.atleast_1d(fig.subplots(nrows, cols, sharex=True, sharey=True, squeeze=False)).ravel()
        for ax, model in zip(axes, models):
            part = best[best["model"] == model]
            for i, v in enumerate(variants.itertuples(index=False)):
                match = part[(part["n_layers"] == v.n_layers) & (part["seq_len"] == v.seq_len)]
                match = match[match["d_model"] == v.d_model]
                if match.empty:
                    continue
                shape = f", T {int(v.seq_len)}, d {int(v.d_model)}" if several_shapes else ""
                label = f"{int(v.n_layers)} layer{'s' if int(v.n_layers) != 1 else ''}{shape}"
                _draw_line(ax, match.iloc[0]["result"], DEPTH_COLORS[i % len(DEPTH_COLORS)], label, model, where)
            ax.axhline(float(part["chance"].max()), color="grey", linestyle=":", linewidth=1)
            ax.set_title(model)
            ax.set_ylim(-0.03, 1.03)
        for ax in axes[len(models) :]:
            ax.set_visible(False)
        labels = {b.hi: b.label for h in best["result"] for b in h.bins}
        for ax in axes[: len(models)]:
            ax.set_xticks(range(len(his)), [labels[h] for h in his], rotation=45)
        for ax in axes[::cols]:
            ax.set_ylabel("accuracy")
        axes[0].legend(fontsize="x-small", loc="upper right")
        fig.supxlabel("key-to-query distance (tokens)", fontsize=8)
        fig.tight_layout()
    return fig


def _draw_line(ax, h: Horizon, color: str, label: str, model: str, where: dict[int, int]) -> None:
    bins = sorted((b for b in h.bins if b.trials > 0), key=lambda b: b.hi)
    x = np.array([where[b.hi] for b in bins], dtype=float)
    y = np.array([b.accuracy for b in bins])
    err = np.array([[a - b.ci_low for a, b in zip(y, bins)], [b.ci_high - a for a, b in zip(y, bins)]])
    ax.errorbar(x, y, yerr=err, color=color, marker="o", markersize=3, capsize=2, label=label, gid=f"series:{model}")
    if h.horizon is not None:
        ax.plot([where[h.horizon.hi]], [h.horizon.accuracy], "o", markersize=9, markerfacecolor="none", color=color)


def intro(best: pd.DataFrame) -> str:
    """What the section measures, in plain words."""
    chance = ", ".join(sorted({fmt_num(c) for c in best["chance"]}))
    steps = sorted({int(s) for s in best["step"].dropna()})
    trained = f"{steps[0]} optimiser steps each" if len(steps) == 1 else f"{', '.join(map(str, steps))} steps"
    return (
        "Each model learns to recall the value that followed a key earlier in the sequence, where the gap "
        "between the key and the point where it is asked for is controlled. Every test example asks once "
        "per distance bin, so each bin's accuracy counts one independent answer per example. Models were "
        f"trained {trained}. Chance is {chance} (a uniform guess of a value). The **effective horizon** is "
        f"the farthest bin whose accuracy is significantly above chance and at least {HALF_OF_BEST:g} × the "
        "model's own best bin: how far back the model really recalls. In the table, ° marks a bin not "
        "above chance; the bracket is the 95% Clopper-Pearson interval."
    )


def section(newest: pd.DataFrame, out_dir: Path, figures_dir: str = "figures", colors: object = None) -> str:
    """The report's recall-distance section (Markdown), writing its figure under out_dir/figures_dir;
    "" when there are no ok recall_distance rows."""
    rows = distance_rows(newest)
    if rows.empty:
        return ""
    best = best_per_cell(rows)
    name = "recall-vs-distance.png"
    save_png(accuracy_figure(best), Path(out_dir) / figures_dir / name)
    return "\n".join(
        [
            "## Recall against distance: how far back each model recalls\n",
            intro(best) + "\n",
            "### Effective horizon\n",
            readings(best),
            "### Accuracy vs distance\n",
            f"![MQAR accuracy vs key-to-query distance, a panel per model]({figures_dir}/{name})\n",
            "### Accuracy per distance bin (95% interval)\n",
            bins_table(best),
        ]
    )


__all__ = ["section"]
