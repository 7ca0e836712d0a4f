"""The perplexity task: train a registered LM on a text data set and evaluate it (see `measure`).

Its `perplexity:` section (`settings.PerplexitySettings`) is required; a models entry may
replace its fields for that entry (`perplexity: {dataset: tinystories}`). One row per
evaluation point. The report shows one section per data set (paper Table 1/3 layout,
learning curves, loss by position).

No torch here: `measure` holds the work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gam_bench.tasks.base import SILENT, ModelNeeds, RunContext, Task
from gam_bench.tasks.perplexity.settings import PerplexitySettings

if TYPE_CHECKING:
    from gam_bench.cell import Cell

_F64, _I64, _STR = "float64", "int64", "string"

# Training columns: the recall task fills these too (same names, same types).
TRAINING_COLUMNS = {
    "dataset": _STR,
    "split": _STR,
    "step": _I64,  # optimiser steps
    "tokens_seen": _I64,
    "wall_s": _F64,  # training seconds (evaluation excluded)
    "train_loss": _F64,
    # divergence (training/divergence.py): on every row of a cell stored with status "diverged" (v5)
    "diverged_step": _I64,  # the 1-based optimiser step whose loss or gradient was non-finite
    "diverged_tokens": _I64,  # tokens trained on before that step
    "last_finite_loss": _F64,  # the last finite training loss before it; null: none
    "diverged_where": _STR,  # the first non-finite value on a re-run of that step (divergence.locate)
}


class Perplexity(Task):
    name = "perplexity"
    description = "train an LM on a text data set; validation loss and perplexity as it trains"
    report = "gam_bench.report.perplexity"  # its report section (labels, section, METHOD)
    settings = PerplexitySettings
    columns = {
        **TRAINING_COLUMNS,
        "data_source": _STR,
        "data_sha256": _STR,
        "tokenizer": _STR,
        "epoch": _F64,
        "epoch_time_s": _F64,
        "val_loss": _F64,
        "val_ppl": _F64,
        "position_loss": "list<float64>",  # mean val loss per position bucket
        "position_bucket_edges": "list<int64>",
    }

    def model_needs(self, cell: Cell) -> ModelNeeds:
        """seq_len positions and the task's dropout; the vocabulary is the tokenizer's, known in
        the worker (`measure.run` passes it to the builder)."""
        return ModelNeeds(
            cell.seq_len, f"a perplexity cell at seq_len={cell.seq_len}", defaults={"dropout": cell.settings.dropout}
        )

    def run(self, cell: Cell, ctx: RunContext = SILENT) -> list[dict[str, Any]]:
        from gam_bench.tasks.perplexity import measure

        return measure.run(cell, ctx)

    def label(self, cell: Cell) -> str:
        return f" {cell.settings.dataset}"

    def outcome(self, row: dict[str, Any]) -> str:
        if row.get("val_ppl") is not None:
            return f"val ppl {row['val_ppl']:.1f}  {row.get('duration_s', 0):.0f} s"
        return ""

    def dry_run_columns(self) -> dict[str, Callable[[Cell], str]]:
        return {"data": lambda cell: cell.settings.dataset}

    def summary_columns(self) -> list[tuple[str, str, Callable[[dict[str, Any]], str]]]:
        def ok(row: dict[str, Any]) -> bool:
            return row["status"] == "ok" and row.get("val_ppl") is not None

        return [
            ("dataset", "left", lambda row: str(row.get("dataset") or "-")),
            ("status", "left", lambda row: row["status"]),
            ("tokens", "right", lambda row: f"{row['tokens_seen']:,}" if ok(row) else "-"),
            ("val loss", "right", lambda row: f"{row['val_loss']:.3f}" if ok(row) else "-"),
            ("val ppl", "right", lambda row: f"{row['val_ppl']:.1f}" if ok(row) else "-"),
            ("wall s", "right", lambda row: f"{row['duration_s']:.0f}" if row.get("duration_s") is not None else "-"),
        ]


TASK = Perplexity()
