"""Recall (MQAR) results: Zoology's Figure 2 layout, a table, chance and a binomial test.

A recall row is one trained cell: model, seq_len, d_model, num_kv_pairs, lr, accuracy,
n_answers, chance (optional: probe_correct and n_examples, chance_in_context, n_layers).
As in the paper, the learning rate is swept and each cell (model, seq_len, d_model,
num_kv_pairs) keeps the run with the best test accuracy (`best_per_cell`).

Above chance: a one-sided exact binomial test against `chance` (1 / number of value
tokens) with a 95% Clopper-Pearson interval. The answers of one test example share one
context and are not independent, so the test counts one probe answer per example
(`probe_correct` of `n_examples`) when the rows have it; otherwise it counts every answer
and says the interval is too narrow. Picking the best of several learning rates is a
multiple comparison: the p-value is multiplied by the number of rates tried (Bonferroni).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats

from gam_bench.report.figure import SIZES, current_size, plot_style, save_png
from gam_bench.report.plots import palette
from gam_bench.report.tables import fmt_num, markdown_table

CELL = ["model", "seq_len", "d_model", "num_kv_pairs"]
ALPHA = 0.05

METHOD = """- **Recall (MQAR)**: each cell trains its model from scratch on generated MQAR examples
  (keys and values from disjoint halves of the vocabulary, queries placed by a power law)
  with AdamW, warmup and cosine decay over its budget, the loss taken at the answer positions
  only; it is then scored on held-out examples that share no problem with the training set.
  A prediction is the argmax over the whole vocabulary at an answer position. Accuracy counts
  every answer; the binomial test and interval count one probe answer per test example.
"""


def recall_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The ok rows of the recall task (rows without a status column count as ok)."""
    rows = df[df["task"] == "recall"]
    if "status" in rows:
        rows = rows[rows["status"] == "ok"]
    return rows.dropna(subset=["accuracy"]).reset_index(drop=True)


def best_per_cell(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, seq_len, d_model, num_kv_pairs): the lr with the best accuracy
    (ties: the smaller lr), with `lrs_tried` and the binomial columns of `above_chance`."""
    ordered = rows.sort_values([*CELL, "accuracy", "lr"], ascending=[True] * 4 + [False, True], kind="stable")
    best = ordered.drop_duplicates(CELL, keep="first").copy()
    tried = rows.groupby(CELL)["lr"].nunique().rename("lrs_tried")
    best = best.join(tried, on=CELL).sort_values(CELL).reset_index(drop=True)
    tests = [above_chance(r) for r in best.itertuples(index=False)]
    for field in BinomialResult.__dataclass_fields__:
        best[field] = [getattr(t, field) for t in tests]
    return best


@dataclass(frozen=True)
class BinomialResult:
    successes: int
    trials: int
    unit: str  # "examples" (one probe answer each, independent) or "answers" (not independent)
    ci_low: float
    ci_high: float
    p_value: float  # one-sided, Bonferroni-corrected for the learning rates tried
    above: bool


def above_chance(row) -> BinomialResult:
    """Exact binomial test of a best-lr row against its chance accuracy."""
    probe, n_examples = getattr(row, "probe_correct", None), getattr(row, "n_examples", None)
    if probe is not None and n_examples is not None and not pd.isna(probe) and n_examples > 0:
        k, n, unit = int(probe), int(n_examples), "examples"
    else:
        n = int(row.n_answers)
        k, unit = int(round(float(row.accuracy) * n)), "answers"
    test = stats.binomtest(k, n, float(row.chance), alternative="greater")
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=1 - ALPHA, method="exact")
    p = min(1.0, test.pvalue * int(getattr(row, "lrs_tried", 1) or 1))
    return BinomialResult(k, n, unit, float(ci.low), float(ci.high), float(p), bool(p < ALPHA))


def results_table(best: pd.DataFrame) -> str:
    """Markdown: one row per cell with its best lr, accuracy, the share the binomial test counts
    (probe answers, or every answer) with its interval, chance, verdict, steps trained and
    training seconds."""
    headers = ["Model", "seq_len", "kv pairs", "d_model", "best lr (of n)", "Accuracy", "Tested (95% CI)", "Chance"]
    headers.append("1/kv")
    headers += ["Above chance", "Steps", "Train s"]
    rows = []
    for r in best.itertuples(index=False):
        verdict = f"{'yes' if r.above else 'no'} (p={r.p_value:.2g}, {r.successes}/{r.trials} {r.unit})"
        rows.append(
            [
                r.model,
                int(r.seq_len),
                int(r.num_kv_pairs),
                int(r.d_model),
                f"{r.lr:.2g} (of {r.lrs_tried})",
                f"{r.accuracy:.3f}",
                f"{r.successes / r.trials:.3f} ({r.ci_low:.3f}–{r.ci_high:.3f})",
                fmt_num(r.chance),
                fmt_num(1.0 / r.num_kv_pairs),
                verdict,
                _steps(r),
                _seconds(r),
            ]
        )
    return markdown_table(headers, rows, align="lrrrrrrrrlrr")


def _steps(row) -> str:
    """Optimiser steps the cell trained for (what a seconds budget bought), or "–"."""
    steps = getattr(row, "step", None)
    return "–" if steps is None or pd.isna(steps) else str(int(steps))


def _seconds(row) -> str:
    """Training seconds the cell spent (`wall_s`), or "–"."""
    seconds = getattr(row, "wall_s", None)
    return "–" if seconds is None or pd.isna(seconds) else f"{seconds:.0f}"


def chance_note(best: pd.DataFrame) -> str:
    """The chance levels and how the test counts, in words."""
    chances = ", ".join(sorted({fmt_num(c) for c in best["chance"]}))
    units = set(best["unit"])
    counting = (
        "one probe answer per test example (a seeded random pair of each), so the trials are independent"
        if units == {"examples"}
        else "every answer; the answers of one example share a context, so they are not independent and "
        "the intervals are too narrow"
    )
    return (
        f"Best learning rate per cell (the paper's protocol): each cell shows the lr with the highest test "
        f"accuracy of the rates tried. Chance accuracy is {chances} (1 / number of value tokens, a uniform "
        f"guess of a value). Guessing among the example's own values scores 1/kv without any key-specific "
        f"recall. 'Above chance' is a one-sided exact binomial test at {ALPHA} (Bonferroni over the rates "
        f"tried) with a 95% Clopper-Pearson interval, counting {counting}."
    )


def accuracy_figure(best: pd.DataFrame, x: str, colors: dict[str, str] | None = None) -> Figure:
    """Accuracy vs `x` ("d_model" or "seq_len"), one line per model, one panel per value of the
    other axis: Zoology's Figure 2 (x = model dimension, a panel per sequence length)."""
    panel_by = "seq_len" if x == "d_model" else "d_model"
    panels = sorted(best[panel_by].unique())
    colors = colors or palette(best["model"])
    size, k = current_size(), current_size().font / SIZES["paper"].font  # panels grow with the type
    with plot_style():
        fig = Figure(figsize=(3.2 * k * len(panels), 3.0 * k), dpi=size.dpi)
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
        for ax, value in zip(axes, panels):
            part = best[best[panel_by] == value]
            for model, line in part.groupby("model", sort=True):
                line = line.sort_values(x)
                ax.plot(line[x], line["accuracy"], marker="o", color=colors[model], label=model)
            ax.axhline(float(part["chance"].max()), color="grey", linestyle=":", linewidth=1)
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted(part[x].unique()), [str(int(v)) for v in sorted(part[x].unique())])
            ax.set_title(f"{panel_by} {int(value)}" + _kv_label(part))
            ax.set_xlabel("model dimension" if x == "d_model" else "sequence length")
            ax.set_ylim(-0.02, 1.02)
        axes[0].set_ylabel("MQAR accuracy (best lr)")
        axes[-1].legend(fontsize="small", loc="best")
        fig.tight_layout()
    return fig


def _kv_label(part: pd.DataFrame) -> str:
    kv = sorted(part["num_kv_pairs"].unique())
    return f", {'/'.join(str(int(k)) for k in kv)} kv" if len(kv) <= 3 else ""


def section(newest: pd.DataFrame, out_dir: Path, figures_dir: str = "figures", colors: object = None) -> str:
    """The report's recall section (Markdown), writing its two figures under out_dir/figures_dir.
    An empty string when there are no ok recall rows."""
    rows = recall_rows(newest)
    if rows.empty:
        return ""
    best = best_per_cell(rows)
    colors = palette(best["model"])
    images = []
    for x, alt in (("d_model", "MQAR accuracy vs model dimension"), ("seq_len", "MQAR accuracy vs sequence length")):
        name = f"recall-vs-{x}.png"
        save_png(accuracy_figure(best, x, colors), Path(out_dir) / figures_dir / name)
        images.append(f"![{alt}]({figures_dir}/{name})")
    return "\n".join(
        [
            "## Recall: multi-query associative recall (MQAR)\n",
            chance_note(best) + "\n",
            results_table(best),
            "### Accuracy vs model dimension and vs sequence length (Zoology Figure 2 layout)\n",
            "\n".join(images) + "\n",
        ]
    )
