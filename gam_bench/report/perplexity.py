"""Perplexity results: the paper's Table 1 / Table 3 layout, learning curves
(validation perplexity against tokens seen and against training wall time) and the loss
per position in the context window.

A perplexity cell stores one row per evaluation point; the newest attempt of each cell is
kept (`store.latest`), and its final row (highest `step`) is what the table reports.
Cells of one data set that share a model are told apart by what differs in their config
(seed, budget, ...), e.g. "gam (seed=1)".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gam_bench.analysis.rows import parse_config
from gam_bench.report.labels import variant_labels
from gam_bench.report.plots import new_figure, plot_style, save_png
from gam_bench.report.tables import MISSING, fmt_num, markdown_table, one_row_per_cell, status_label


@dataclass
class DatasetRuns:
    """The perplexity cells of one data set: every row, and each cell's final row."""

    dataset: str
    rows: pd.DataFrame  # all evaluation rows, with a "label" column
    final: pd.DataFrame  # one row per cell (its highest step), sorted by label

    @property
    def is_ablation(self) -> bool:
        """Only variants of one family (the paper's Table 3 compares GAM variants)."""
        return self.final["family"].nunique() == 1 and self.final["model"].nunique() > 1

    @property
    def layout(self) -> str:
        return "paper Table 3 layout (ablation)" if self.is_ablation else "paper Table 1 layout"


def by_dataset(df: pd.DataFrame) -> list[DatasetRuns]:
    """Perplexity rows (newest attempt per cell) grouped by data set, sorted."""
    rows = df[df["task"] == "perplexity"].copy()
    if rows.empty:
        return []
    rows["dataset"] = [_dataset(d, c) for d, c in zip(rows["dataset"], rows["config_json"])]
    out = []
    for dataset, part in rows.groupby("dataset", sort=True):
        final = one_row_per_cell(part)
        labels = cell_labels(final)
        part = part.assign(label=part["cell_id"].map(labels))
        final = final.assign(label=final["cell_id"].map(labels)).sort_values(["label", "cell_id"])
        out.append(DatasetRuns(str(dataset), part, final.reset_index(drop=True)))
    return out


def _dataset(stored: object, config_json: object) -> str:
    """The row's dataset; for a cell that failed before loading data, its config's."""
    if isinstance(stored, str) and stored:
        return stored
    settings = parse_config(config_json).get("perplexity") or {}
    return str(settings.get("dataset") or "?")


def cell_labels(final: pd.DataFrame) -> dict[str, str]:
    """cell_id -> model name, plus the config values that differ when a model has several cells."""
    return variant_labels(
        (cid, str(model), parse_config(text))
        for cid, model, text in zip(final["cell_id"], final["model"], final["config_json"])
    )


def data_note(runs: DatasetRuns) -> str:
    """One line naming the data and tokenizer the rows say were used (hashes shortened)."""
    f = runs.final

    def values(column: str) -> str:
        vals = sorted({_short_hashes(str(v)) for v in f[column].dropna()})
        return "; ".join(vals) if vals else MISSING

    return (
        f"Data: split {values('split')}; source {values('data_source')}; "
        f"sha256 {values('data_sha256')}; tokenizer {values('tokenizer')}."
    )


def _short_hashes(text: str) -> str:
    return re.sub(r"\b([0-9a-f]{12})[0-9a-f]{52}\b", r"\1…", text)


def results_table(runs: DatasetRuns) -> str:
    """Params, Avg. time/epoch, Val. loss, Val. PPL per model (final evaluation of each cell)."""
    rows = [
        [
            r.label,
            fmt_params(r.params),
            _int(r.seq_len),
            _int(r.tokens_seen),
            fmt_num(_time_per_epoch(r)),
            _fixed(r.val_loss, 4),
            _fixed(r.val_ppl, 2),
            status_label(r.status),
        ]
        for r in runs.final.itertuples()
    ]
    headers = [
        "Model",
        "Params",
        "Context",
        "Tokens seen",
        "Avg. time/epoch (s)",
        "Val. loss",
        "Val. PPL",
        "Status",
    ]
    return markdown_table(headers, rows, align="lrrrrrrl")


def fmt_params(value: object) -> str:
    if value is None or pd.isna(value):
        return MISSING
    v = float(value)
    if v >= 1e6:
        return f"{v / 1e6:.1f}M"
    return f"{v / 1e3:.1f}K" if v >= 1e3 else f"{v:.0f}"


def _int(value: object) -> str:
    return MISSING if value is None or pd.isna(value) else f"{int(value):,}"


def _fixed(value: object, digits: int) -> str:
    return MISSING if value is None or pd.isna(value) else f"{float(value):.{digits}f}"


def _time_per_epoch(row: Any) -> float | None:
    """The row's `epoch_time_s` (average so far); else wall_s / epoch."""
    if row.epoch_time_s is not None and not pd.isna(row.epoch_time_s):
        return float(row.epoch_time_s)
    if row.epoch and not pd.isna(row.epoch) and row.epoch > 0 and not pd.isna(row.wall_s):
        return float(row.wall_s) / float(row.epoch)
    return None


CURVE_X = {"tokens": ("tokens_seen", "Tokens seen"), "wall": ("wall_s", "Training wall time (s)")}


def curve_figure(runs: DatasetRuns, x: str, colors: dict[str, str]) -> Figure:
    """Validation perplexity against tokens seen (x="tokens") or wall time (x="wall")."""
    column, xlabel = CURVE_X[x]
    with plot_style():
        fig, ax = new_figure()
        for label, rows in runs.rows.groupby("label", sort=True):
            rows = rows.dropna(subset=["val_ppl", column]).sort_values("step")
            if rows.empty:  # e.g. a cell that failed before its first evaluation
                continue
            ax.plot(
                rows[column],
                rows["val_ppl"],
                marker="o",
                markersize=3,
                linewidth=1.2,
                color=colors[label],
                label=legend_label(runs, label),
                gid=f"curve:{label}",
            )
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Validation perplexity")
        ax.set_title(f"Validation perplexity vs {xlabel.split(' (')[0].lower()}\n{runs.dataset}")
        if ax.lines:
            ax.legend(loc="best")
    return fig


def legend_label(runs: DatasetRuns, label: str) -> str:
    """The curve's label; a cell that did not finish ok says so (e.g. "mamba (diverged at step 812)")."""
    final = runs.final[runs.final["label"] == label]
    if final.empty or final["status"].iloc[0] == "ok":
        return label
    row = final.iloc[0]
    step = row.get("diverged_step")
    where = f" at step {int(step)}" if step is not None and not pd.isna(step) else ""
    return f"{label} ({row['status']}{where})"


def position_figure(runs: DatasetRuns, colors: dict[str, str]) -> Figure:
    """Final validation loss per position bucket within the context window, per model."""
    with plot_style():
        fig, ax = new_figure()
        for r in runs.final.itertuples():
            x, y = _bucket_points(r.position_loss, r.position_bucket_edges)
            if len(x):
                ax.plot(
                    x,
                    y,
                    marker="o",
                    markersize=3,
                    linewidth=1.2,
                    color=colors[r.label],
                    label=r.label,
                    gid=f"position:{r.label}",
                )
        ax.set_xlabel("Position in the context window (tokens, bucket centre)")
        ax.set_ylabel("Validation loss (nats/token)")
        ax.set_title(f"Validation loss by position in context\n{runs.dataset}")
        if ax.lines:
            ax.legend(loc="best")
    return fig


def _bucket_points(loss: object, edges: object) -> tuple[np.ndarray, np.ndarray]:
    """(bucket centres, losses) from n losses and n + 1 edges; bucket index when edges don't fit."""
    if loss is None or len(loss) == 0:
        return np.array([]), np.array([])
    y = np.asarray(loss, dtype=float)
    e = np.asarray(edges if edges is not None else [], dtype=float)
    x = (e[:-1] + e[1:]) / 2 if len(e) == len(y) + 1 else np.arange(len(y), dtype=float)
    keep = np.isfinite(y)
    return x[keep], y[keep]


def has_positions(runs: DatasetRuns) -> bool:
    return any(v is not None and len(v) for v in runs.final["position_loss"])


def labels(rows: pd.DataFrame) -> list[str]:
    """The cell labels of the perplexity figures (for the report's shared palette)."""
    return [label for runs in by_dataset(rows) for label in runs.final["label"]]


def section(rows: pd.DataFrame, out_dir: Path, figures: str, colors: dict[str, str]) -> str:
    """One section per data set ("" without perplexity rows)."""
    return "\n".join(_dataset_section(r, out_dir, figures, colors).rstrip("\n") + "\n" for r in by_dataset(rows))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "data"


def _dataset_section(runs: DatasetRuns, out_dir: Path, figures: str, colors: dict[str, str]) -> str:
    stem = f"ppl-{_slug(runs.dataset)}"
    plots = [
        (curve_figure(runs, "tokens", colors), "tokens", "Validation perplexity vs tokens"),
        (curve_figure(runs, "wall", colors), "wall", "Validation perplexity vs wall time"),
    ]
    if has_positions(runs):
        plots.append((position_figure(runs, colors), "position", "Validation loss by position"))
    images = []
    for fig, kind, alt in plots:
        name = f"{stem}-{kind}.png"
        save_png(fig, out_dir / figures / name)
        images.append(f"![{alt}, {runs.dataset}]({figures}/{name})")
    return "\n".join(
        [
            f"## Perplexity: {runs.dataset}\n",
            f"### Final validation results ({runs.layout})\n",
            data_note(runs) + "\n",
            results_table(runs),
            "### Learning curves and loss by position\n",
            "\n".join(images) + "\n",
        ]
    )


METHOD = """- **Perplexity** tables report each cell's final evaluation (highest step), exp of the
  validation loss averaged over every evaluated token (token-weighted, not per block).
  Avg. time/epoch is training time (evaluation excluded) divided by the epochs done.
"""
