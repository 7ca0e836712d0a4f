"""The "Longest context that fits" section of report.md: the stored searches' answers
(gam_bench.search), a table per task with a line per model in words, a bar figure of the
answers, and, where the report also holds a throughput grid of the same shape, its time and
memory curves with each model's answer drawn as a dotted vertical line.

A report-level section: it spans the tasks that were searched (training: throughput rows;
decode: decode rows). No torch here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gam_bench.report.curves import build_groups, variant
from gam_bench.report.figure import current_size, plot_style, save_png
from gam_bench.report.labels import execution_mode, variant_labels
from gam_bench.report.plots import scaling_figure
from gam_bench.report.tables import fmt_len, markdown_table
from gam_bench.search.answers import Searched, grid_rows, stored_searches

WHAT = {  # task -> what one probe ran, in words
    "throughput": "training: one forward+backward",
    "decode": "decoding: a prefill of the context, then decode steps from its state",
}
VERB = {"throughput": "trains on", "decode": "decodes from a context of"}


def section(newest: pd.DataFrame, out_dir: Path, figures: str, colors: dict[str, str]) -> str:
    """The section ("" when no search is stored)."""
    order = list(WHAT)  # training first, then decoding, then any other task
    searches = sorted(stored_searches(newest), key=lambda s: order.index(s.task) if s.task in order else len(order))
    if not searches:
        return ""
    parts = ["## Longest context that fits\n", _intro(searches)]
    for task in dict.fromkeys(s.task for s in searches):
        mine = [s for s in searches if s.task == task]
        parts += [f"### {_title(mine[0])}\n", _table(mine)]
    parts += ["### Per model\n", _readings(searches)]
    name = "fit-longest.png"
    save_png(bars_figure(searches, colors), out_dir / figures / name)
    parts.append(f"![Longest length that fits, per model]({figures}/{name})\n")
    parts.append(_on_curves(newest, searches, out_dir, figures, colors))
    return "\n".join(p.rstrip("\n") + "\n" for p in parts if p)


def _intro(searches: list[Searched]) -> str:
    s = searches[0].settings
    return (
        "For each model the runner searched the longest sequence length at which one cell runs "
        "within its limits: the memory cap (a longer cell stops with `oom`) and the time limit "
        "per cell (`timeout`). Starting at "
        f"{s.start:,} tokens it doubles the length until a cell fails, then bisects between the "
        "last length that ran and the first that failed, until the gap is within "
        f"{s.precision:.0%} of the length (or {s.multiple_of} tokens). Every probe is a stored "
        'row (a fresh worker process each), so "longest that fits" is a length that ran, and '
        '"first failure" one that did not. On a CPU the cap limits the address space the worker '
        "may add after start-up; on a GPU, the allocator's share of the device's memory.\n"
    )


def _title(s: Searched) -> str:
    config = s.config
    shape = (
        f"{config.get('level')} level, {config.get('mode')}, {config.get('dtype')}, batch {config.get('batch_size')}"
    )
    return f"{WHAT.get(s.task, s.task).capitalize()} ({shape}, {s.device})"


def _setting(s: Searched) -> str:
    extras = {k: v for k, v in s.overrides.items() if k not in ("d_model", "dropout")}
    text = ", ".join(f"{k}={v}" for k, v in sorted(extras.items()))
    return f"{s.model} ({text})" if text else s.model


def _table(searches: list[Searched]) -> str:
    headers = [
        "Model",
        "d_model",
        "layers",
        "Longest that fits",
        "Peak there",
        "First failure",
        "Cap",
        "Time limit",
        "Probes",
        "Search",
    ]
    rows = []
    for s in searches:
        a = s.answer
        rows.append(
            [
                _setting(s),
                s.d_model if s.d_model is not None else "–",
                s.n_layers if s.n_layers is not None else "–",
                _fits_text(s),
                f"{s.peak_bytes / 2**20:,.0f} MiB" if s.peak_bytes is not None else "–",
                f"{a.fails:,} ({a.fail_status})" if a.fails is not None else "–",
                s.cap_text,
                f"{s.timeout_s:g} s",
                len(a.probes),
                a.status,
            ]
        )
    note = "Peak there: the probe's peak memory at the longest length (RSS on a CPU, the allocator's on a GPU).\n\n"
    return note + markdown_table(headers, rows, align="lrrrrrllrl")


def _fits_text(s: Searched) -> str:
    a = s.answer
    if a.fits is None:
        return "none"
    return f"{a.fits:,}" if a.status == "converged" else f"≥ {a.fits:,}"  # else the search did not bracket it


def _readings(searches: list[Searched]) -> str:
    """One line per model setting and task, in words."""
    lines = []
    for s in searches:
        a, verb = s.answer, VERB.get(s.task, f"runs {s.task} at")
        where = f"under {s.cap_text} and {s.timeout_s:g} s per cell"
        layers = f", {s.n_layers} layer{'s' if s.n_layers != 1 else ''}" if s.n_layers else ""
        who = f"{_setting(s)} (d_model {s.d_model}{layers})"
        if a.fits is None:
            lines.append(f"- {who}: {verb} no length {where}; {a.fails:,} tokens failed ({a.fail_status}).")
            continue
        why = f"; {a.fails:,} failed ({a.fail_status})" if a.fails is not None else ""
        bound = "at least " if a.status == "fits at max" else "up to "
        tail = "" if a.status in ("converged", "fits at max") else f" (search {a.status})"
        lines.append(f"- {who}: {verb} {bound}{a.fits:,} tokens {where}{why}{tail}.")
    return "\n".join(lines) + "\n"


def bars_figure(searches: list[Searched], colors: dict[str, str]) -> Figure:
    """Horizontal bars: the longest length that fits per model setting, one bar per task (log x)."""
    tasks = list(dict.fromkeys(s.task for s in searches))
    names = list(dict.fromkeys(_setting(s) for s in searches))
    height = 0.8 / len(tasks)
    shades = ["#4c72b0", "#dd8452", "#55a868", "#8172b2"]
    size = current_size()
    with plot_style():
        bar = size.font * 2.2 / 72  # inches per bar
        fig = Figure(figsize=(size.width * 1.6, 1.2 + bar * len(names) * len(tasks)), dpi=size.dpi)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for t, task in enumerate(tasks):
            for s in (s for s in searches if s.task == task):
                y = names.index(_setting(s)) + t * height
                value = s.answer.fits or 0
                ax.barh(y, value, height=height * 0.9, color=shades[t % len(shades)], gid=f"fits:{task}:{_setting(s)}")
                ax.text(max(value, 1), y, f" {_fits_text(s)}", va="center", fontsize=size.font * 0.75)
        ax.set_xscale("log", base=2)
        ax.set_yticks([i + 0.4 - height / 2 for i in range(len(names))], names)
        ax.invert_yaxis()
        ax.set_xlabel("Longest sequence length that fits (tokens)")
        caps = ", ".join(dict.fromkeys(s.cap_text for s in searches))
        ax.set_title(f"Longest length that fits under {caps}")
        handles = [
            ax.bar(0, 0, color=shades[t % len(shades)], label=WHAT.get(task, task).split(":")[0])
            for t, task in enumerate(tasks)
        ]
        ax.legend(handles=handles, loc="lower right", frameon=True)
        low = min((s.answer.fits for s in searches if s.answer.fits), default=256)
        high = max((s.answer.fits for s in searches if s.answer.fits), default=1024)
        ax.set_xlim(low / 4, high * 8)
        ticks = [2**k for k in range(int(np.log2(low / 4)) + 1, int(np.log2(high * 8)) + 1)]
        ax.set_xticks(ticks, [fmt_len(t) for t in ticks])
        fig.tight_layout()
    return fig


def _on_curves(
    newest: pd.DataFrame, searches: list[Searched], out_dir: Path, figures: str, colors: dict[str, str]
) -> str:
    """The throughput grid's time and memory figures with the training answers marked, where
    the report holds a grid of the searched shape; else how to get one."""
    trained = [s for s in searches if s.task == "throughput" and s.answer.fits is not None]
    if not trained:
        return ""
    images = []
    grid = grid_rows(newest)
    for group in build_groups(grid[grid["task"] == "throughput"]):
        fits = _fits_of_group(grid, group, trained)
        if not fits:
            continue
        for metric, title in (("time", "Time"), ("memory", "Peak memory")):
            name = f"fit-{group.key.slug}-{metric}.png"
            save_png(scaling_figure(group, metric, colors, fits=fits), out_dir / figures / name)
            images.append(
                f"![{title} vs length with the longest length that fits, {group.key.title}]({figures}/{name})"
            )
    if not images:
        return (
            "The answers are not drawn on scaling curves here: this report holds no throughput grid of the "
            "searched shape. Report the search together with one, e.g. "
            "`gam-bench report results/field results/fit results/fit-decode -o reports/fit` after "
            "`gam-bench run suites/field.yaml --device cpu` (its CPU profile has the shape of suites/fit.yaml's).\n"
        )
    head = (
        "### On the scaling curves\n\n"
        "The throughput grid's curves of the same shape, with each model's longest training length "
        "that fits drawn as a dotted vertical line in its colour.\n"
    )
    return head + "\n" + "\n".join(images) + "\n"


def _fits_of_group(grid: pd.DataFrame, group, trained: list[Searched]) -> dict[str, int]:
    """Series label -> the training answer of the same model, overrides and shape."""
    key = group.key
    part = grid[
        (grid["task"] == "throughput")
        & (grid["device"].astype(str) == key.device)
        & (grid["level"] == key.level)
        & (grid["mode"] == key.mode)
        & (grid["dtype"] == key.dtype)
        & (grid["batch_size"] == key.batch_size)
    ]
    pairs = {(str(r.model), variant(r)) for r in part.itertuples()}
    labels = variant_labels(((m, v), m, json.loads(v)) for m, v in sorted(pairs))
    out = {}
    for s in trained:
        config = s.config
        shape = (s.device, config.get("level"), config.get("mode"), config.get("dtype"), config.get("batch_size"))
        if shape != (key.device, key.level, key.mode, key.dtype, key.batch_size):
            continue
        mine = json.dumps({**s.overrides, **execution_mode(config)}, sort_keys=True, default=str)
        if (s.model, mine) in labels:
            out[labels[(s.model, mine)]] = s.answer.fits
    return out
