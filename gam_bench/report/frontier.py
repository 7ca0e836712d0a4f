"""The quality-cost frontier (Zoology's key figure): recall accuracy against what a model costs,
one point per model and width, joined across tasks on the model's configuration.

y: recall accuracy, from any task's ok rows with an `accuracy` column (the recall task's, or
another recall variant's), the best learning rate per cell as the recall section keeps it.
x, one figure each where the rows exist (`AXES`): decode-state bytes at the recall length and
the decode latency there (decode rows), and the training step time there (throughput rows).
A point joins a recall row to a cost row of the same model, d_model, n_layers and overrides
(less those that do not change the architecture: `IGNORED`) at the same seq_len. Where rows
are missing, the section says which suite to run.

A point is on the Pareto frontier when no other point is both cheaper (lower x) and at least
as accurate with one of the two strictly better. No torch here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from gam_bench.analysis.rows import parse_config
from gam_bench.report.figure import current_size, palette, plot_style, save_png
from gam_bench.report.tables import markdown_table
from gam_bench.search.answers import grid_rows

IGNORED = ("dropout", "max_seq_len", "vocab_size", "d_model", "n_layers")  # not the architecture, or own columns


@dataclass(frozen=True)
class Axis:
    name: str
    task: str
    column: str
    title: str
    suite: str  # what to run when its rows are missing


AXES = (
    Axis("state", "decode", "state_bytes", "Decode-state bytes at the recall length", "suites/frontier.yaml"),
    Axis(
        "latency",
        "decode",
        "decode_ms_per_token",
        "Decode latency at the recall length (ms/token)",
        "suites/frontier.yaml",
    ),
    Axis("time", "throughput", "time_ms", "Training step time at the recall length (ms)", "suites/frontier-train.yaml"),
)


def join_key(model: str, config_json: object, d_model: object, n_layers: object) -> str:
    """The model configuration rows are joined on: name, d_model, n_layers and the overrides
    that shape the architecture."""
    overrides = {k: v for k, v in (parse_config(config_json).get("overrides") or {}).items() if k not in IGNORED}
    layers = None if pd.isna(n_layers) else int(n_layers)
    width = None if pd.isna(d_model) else int(d_model)
    return json.dumps([model, width, layers, overrides], sort_keys=True, default=str)


def accuracy_points(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, key, seq_len): the best accuracy over the learning rates tried."""
    if "accuracy" not in rows:
        return rows.iloc[0:0]
    ok = rows[(rows["status"] == "ok") & rows["accuracy"].notna()]
    if ok.empty:
        return ok
    ok = ok.assign(
        key=[join_key(*r) for r in ok[["model", "config_json", "d_model", "n_layers"]].itertuples(index=False)]
    )
    best = ok.sort_values("accuracy", ascending=False, kind="stable").drop_duplicates(["task", "key", "seq_len"])
    kept = ["task", "key", "seq_len", "model", "d_model", "n_layers", "accuracy"]
    return best.sort_values(["task", "seq_len", "model", "d_model"])[kept].reset_index(drop=True)


def cost_points(rows: pd.DataFrame, axis: Axis) -> pd.DataFrame:
    """key, seq_len -> the axis's value: ok rows of its task; the smallest batch where several."""
    part = rows[(rows["task"] == axis.task) & (rows["status"] == "ok")]
    if axis.column not in part:
        return part.iloc[0:0]
    part = part[part[axis.column].notna()]
    if part.empty:
        return part.assign(key=[], x=[])
    part = part.assign(
        key=[join_key(*r) for r in part[["model", "config_json", "d_model", "n_layers"]].itertuples(index=False)]
    )
    part = part.sort_values("batch_size", kind="stable").drop_duplicates(["key", "seq_len"])
    return part.assign(x=part[axis.column].astype(float))[["key", "seq_len", "x"]]


def pareto(points: list[tuple[float, float]]) -> list[bool]:
    """For each (cost, accuracy): True when no other point is at most as costly and at least as
    accurate, with one of the two strictly better."""
    flags = []
    for i, (x, y) in enumerate(points):
        dominated = any((ox <= x and oy >= y) and (ox < x or oy > y) for j, (ox, oy) in enumerate(points) if j != i)
        flags.append(not dominated)
    return flags


def frontier(acc: pd.DataFrame, costs: pd.DataFrame) -> pd.DataFrame:
    """The accuracy points with a cost (`x`), and `on_frontier` per recall task and seq_len."""
    joined = acc.merge(costs, on=["key", "seq_len"], how="inner")
    if joined.empty:
        return joined.assign(on_frontier=[])
    flags = pd.Series(False, index=joined.index)
    for _, part in joined.groupby(["task", "seq_len"]):
        flags[part.index] = pareto(list(zip(part["x"], part["accuracy"])))
    return joined.assign(on_frontier=flags)


def missing_text(acc: pd.DataFrame, costs: pd.DataFrame, axis: Axis) -> str:
    """Which recall points have no row for `axis`, and which suite to run ("" when none)."""
    have = set(zip(costs["key"], costs["seq_len"])) if not costs.empty else set()
    lacking = acc[[(k, n) not in have for k, n in zip(acc["key"], acc["seq_len"])]]
    if lacking.empty:
        return ""
    groups = []
    for (d_model, n_layers, seq_len), part in lacking.groupby(["d_model", "n_layers", "seq_len"], dropna=False):
        models = ", ".join(sorted(set(part["model"])))
        groups.append(f"d_model {_int(d_model)}, {_int(n_layers)} layers, seq_len {int(seq_len)} ({models})")
    return f"- {axis.title}: no {axis.task} rows for " + "; ".join(groups) + f": run {axis.suite}.\n"


def _int(value: object) -> str:
    return "?" if pd.isna(value) else str(int(value))


def section(newest: pd.DataFrame, out_dir: Path, figures: str, colors: dict[str, str]) -> str:
    """The section ("" without recall accuracy rows)."""
    rows = grid_rows(newest)
    acc = accuracy_points(rows)
    if acc.empty:
        return ""
    colors = palette(sorted(set(acc["model"])))  # one colour per model of these figures (the report's may repeat)
    parts = ["## Quality–cost frontier\n", _intro()]
    missing, tables = [], []
    for axis in AXES:
        costs = cost_points(rows, axis)
        missing.append(missing_text(acc, costs, axis))
        points = frontier(acc, costs)
        if points.empty:
            continue
        name = f"frontier-{axis.name}.png"
        save_png(frontier_figure(points, axis, colors), out_dir / figures / name)
        parts.append(f"![Recall accuracy against {axis.title.lower()}]({figures}/{name})\n")
        tables.append((axis, points))
    if tables:
        parts += ["### Points\n", _table(acc, tables), "### Per model\n", _readings(tables)]
    if any(missing):
        parts += ["### Missing rows\n", "".join(missing)]
    return "\n".join(p.rstrip("\n") + "\n" for p in parts)


def _intro() -> str:
    return (
        "Each point is one model at one width: its recall accuracy (the best learning rate, as in the "
        "recall section) against what it costs at the recall length: the bytes of state it keeps to "
        "decode the next token, its latency per decoded token, or the time of one training step. Rows "
        "of different suites are joined on the model's configuration (name, d_model, layers, "
        "architecture overrides) and length. A point is on the Pareto frontier (ringed, and joined by "
        "the line) when no other point is both cheaper and at least as accurate: the best accuracy "
        "that cost buys.\n"
    )


def frontier_figure(points: pd.DataFrame, axis: Axis, colors: dict[str, str]) -> Figure:
    """Accuracy against the axis (log x), a panel per recall task and seq_len; the frontier ringed and joined."""
    panels = list(points.groupby(["task", "seq_len"], sort=True))
    size = current_size()
    with plot_style():
        fig = Figure(figsize=(size.width * len(panels), size.axes_height + 1.3), dpi=size.dpi)
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
        for ax, ((task, seq_len), part) in zip(axes, panels):
            part = _drawable(part)
            for i, (model, mine) in enumerate(part.groupby("model", sort=True)):
                marker = "osD^v<>ph*"[i % 10]
                ax.scatter(
                    mine["x"],
                    mine["accuracy"],
                    color=colors.get(model, "0.3"),
                    marker=marker,
                    label=model,
                    s=16,
                    gid=f"point:{model}",
                )
                for r in mine.itertuples(index=False):
                    text = f"d{int(r.d_model)}" + (" (0 B)" if r.zero else "")
                    ax.annotate(
                        text, (r.x, r.accuracy), textcoords="offset points", xytext=(3, 2), fontsize=size.font * 0.6
                    )
            best = part[part["on_frontier"]].sort_values("x")
            ax.plot(best["x"], best["accuracy"], color="0.2", linewidth=0.9, gid="frontier")
            ax.scatter(best["x"], best["accuracy"], s=70, facecolors="none", edgecolors="0.1", linewidths=0.9)
            ax.set_xscale("log")
            ax.set_ylim(-0.02, 1.02)
            ax.set_title(f"{task}, seq_len {int(seq_len)} (labels: d_model)")
            ax.set_xlabel(axis.title)
        axes[0].set_ylabel("Recall accuracy (best lr)")
        handles, labels = axes[0].get_legend_handles_labels()
        for ax in axes[1:]:
            more, names = ax.get_legend_handles_labels()
            handles += [h for h, n in zip(more, names) if n not in labels]
            labels += [n for n in names if n not in labels]
        handles.append(Line2D([], [], color="0.2", marker="o", markerfacecolor="none", label="Pareto frontier"))
        columns = 3 * len(panels)
        fig.legend(handles=handles, loc="lower center", ncol=columns, frameon=False)
        rows = -(-len(handles) // columns)
        fig.set_size_inches(size.width * len(panels), size.axes_height + 1.0 + rows * size.font * 1.6 / 72)
        fig.tight_layout(rect=(0, rows * size.font * 1.6 / 72 / fig.get_size_inches()[1] + 0.02, 1, 1))
    return fig


def _drawable(part: pd.DataFrame) -> pd.DataFrame:
    """Points for a log x axis: a cost of 0 (a model without decode state) drawn at half the
    smallest positive cost, and flagged (`zero`) so that its label says 0 B."""
    positive = part.loc[part["x"] > 0, "x"]
    floor = float(positive.min()) / 2 if len(positive) else 1.0
    return part.assign(zero=part["x"] <= 0, x=part["x"].where(part["x"] > 0, floor))


def _table(acc: pd.DataFrame, tables: list[tuple[Axis, pd.DataFrame]]) -> str:
    """One row per recall point: accuracy, each axis's value and whether it is on that frontier."""
    headers = ["Model", "d_model", "layers", "seq_len", "Accuracy"]
    values: dict[tuple, dict[str, str]] = {}
    for axis, points in tables:
        headers.append(axis.title.split(" at ")[0])
        for r in points.itertuples(index=False):
            text = _value(axis, r.x) + (" ◆" if r.on_frontier else "")
            values.setdefault((r.task, r.key, r.seq_len), {})[axis.name] = text
    rows = []
    for r in acc.itertuples(index=False):
        cells = values.get((r.task, r.key, r.seq_len), {})
        row = [r.model, _int(r.d_model), _int(r.n_layers), int(r.seq_len), f"{r.accuracy:.3f}"]
        rows.append(row + [cells.get(axis.name, "–") for axis, _ in tables])
    note = "◆: on that axis's Pareto frontier.\n\n"
    return note + markdown_table(headers, rows, align="lrrrr" + "r" * len(tables))


def _value(axis: Axis, x: float) -> str:
    if axis.column == "state_bytes":
        return f"{x / 1024:,.1f} KiB" if x >= 1024 else f"{x:,.0f} B"
    return f"{x:,.3g} ms" if x < 100 else f"{x:,.0f} ms"


def _readings(tables: list[tuple[Axis, pd.DataFrame]]) -> str:
    """One line per model and width: its accuracy, its cost on the first axis shown, frontier or not."""
    axis, points = tables[0]
    lines = []
    for r in points.sort_values(["model", "d_model", "seq_len"]).itertuples(index=False):
        where = "on the frontier" if r.on_frontier else "off the frontier (another model is cheaper and as accurate)"
        lines.append(
            f"- {r.model} (d_model {_int(r.d_model)}, {_int(r.n_layers)} layers): accuracy {r.accuracy:.3f} at "
            f"{int(r.seq_len)} tokens with {_value(axis, r.x)} ({axis.title.split(' at ')[0].lower()}), {where}."
        )
    return "\n".join(lines) + "\n"
