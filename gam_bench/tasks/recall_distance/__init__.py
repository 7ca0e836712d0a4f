"""The recall_distance task: how far back a model recalls. MQAR with one key-value pair per
distance bin (`layout`); accuracy per bin with Clopper-Pearson intervals; the effective horizon.

A cell trains a registered LM from scratch on the cell's distance-binned MQAR data, exactly as a
recall cell trains (the recall task's trainer, model builder and checks: `Recall`), and scores
a disjoint test set per bin. Its `recall_distance:` section (`settings.RecallDistanceSettings`)
is required: recall's training settings (no num_kv_pairs or power_a) and `distance_bins`.

Row schema (one row per cell; the per-bin columns are lists in bin order, nearest first):

- `accuracy`: all bins together, correct / n_answers (every bin has one answer per example, so
  it is the mean of the bins' accuracies); `correct`, `n_answers`, `n_examples` (test examples).
- `distance_lo`, `distance_hi` (list<int64>): bin i covers key-to-query distances
  (distance_lo[i], distance_hi[i]] in tokens (only even distances occur).
- `bin_correct`, `bin_trials` (list<int64>): hits and answers per bin (trials = n_examples).
- `bin_accuracy`, `bin_ci_low`, `bin_ci_high` (list<float64>): accuracy per bin and its 95%
  Clopper-Pearson interval; `bin_p_value`: one-sided exact binomial p of accuracy > chance.
- `horizon` (int64): the effective horizon in tokens, the upper edge of the farthest bin that is
  above chance (Bonferroni over the bins) and at least half the best bin's accuracy; 0: none.
  `horizon_bin` (string): that bin as text ("5–8", or "none"); `best_bin_accuracy`.
- `chance` (1 / value tokens), `chance_in_context` (1 / num_kv_pairs), `num_kv_pairs` (= bins),
  `lr`, `vocab_size`, `pos_init`, `train_examples`, `test_rejected`, `budget` ("steps=N" or
  "seconds=S"), and the training columns: `step` (optimiser steps done), `wall_s` (training
  seconds spent), `tokens_seen`, `train_loss`, `dataset` ("mqar-distance"), `split` ("test").

The statistics are gam_bench.analysis.horizon's; the report section gam_bench.report.horizon's.
No torch here: `measure` holds the work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gam_bench.errors import UserError
from gam_bench.tasks.base import SILENT, RunContext
from gam_bench.tasks.perplexity import TRAINING_COLUMNS
from gam_bench.tasks.recall import Recall
from gam_bench.tasks.recall_distance.settings import RecallDistanceSettings

if TYPE_CHECKING:
    from gam_bench.cell import Cell

_F64, _I64, _STR = "float64", "int64", "string"
_LF64, _LI64 = "list<float64>", "list<int64>"


class RecallDistance(Recall):
    name = "recall_distance"
    description = "train an LM on MQAR with binned key-to-query distances; accuracy per distance, effective horizon"
    report = "gam_bench.report.horizon"
    settings = RecallDistanceSettings
    columns = {
        **TRAINING_COLUMNS,
        "accuracy": _F64,
        "correct": _I64,
        "n_answers": _I64,
        "n_examples": _I64,
        "chance": _F64,
        "chance_in_context": _F64,
        "num_kv_pairs": _I64,
        "lr": _F64,
        "vocab_size": _I64,
        "pos_init": _STR,
        "train_examples": _I64,
        "test_rejected": _I64,
        "budget": _STR,
        "distance_lo": _LI64,
        "distance_hi": _LI64,
        "bin_correct": _LI64,
        "bin_trials": _LI64,
        "bin_accuracy": _LF64,
        "bin_ci_low": _LF64,
        "bin_ci_high": _LF64,
        "bin_p_value": _LF64,
        "horizon": _I64,
        "horizon_bin": _STR,
        "best_bin_accuracy": _F64,
    }

    def check_data(self, settings: RecallDistanceSettings, seq_len: int, at: Callable[[str], str]) -> None:
        """Possible bins, room and vocabulary at `seq_len` (layout.check_setting)."""
        from gam_bench.tasks.recall_distance import layout

        try:
            layout.check_setting(settings.edges(seq_len), seq_len, settings.vocab_size)
        except UserError as exc:
            field = "vocab_size" if "vocab_size=" in str(exc) else "distance_bins"
            text = str(exc).removeprefix("recall_distance.distance_bins: ").removeprefix("recall_distance: ")
            raise UserError(f"{at(field)}: {text}") from None

    def budget_identity(self, settings: dict[str, Any]) -> dict[str, Any]:
        return settings

    def run(self, cell: Cell, ctx: RunContext = SILENT) -> list[dict[str, Any]]:
        from gam_bench.tasks.recall_distance import measure

        return measure.run(cell, ctx)

    def outcome(self, row: dict[str, Any]) -> str:
        if row.get("accuracy") is None:
            return ""
        steps, seconds = row.get("step") or 0, row.get("duration_s", 0)
        return f"horizon {row.get('horizon_bin')}  accuracy {row['accuracy']:.3f}  {steps} steps  {seconds:.0f} s"

    def summary_columns(self) -> list[tuple[str, str, Callable[[dict[str, Any]], str]]]:
        """The end-of-sweep table: horizon, overall accuracy, steps done and training seconds."""
        return [
            ("horizon", "right", lambda r: str(r.get("horizon_bin") or "-")),
            ("accuracy", "right", lambda r: "-" if r.get("accuracy") is None else f"{r['accuracy']:.3f}"),
            ("steps", "right", lambda r: str(r.get("step") or "-")),
            ("train s", "right", lambda r: "-" if r.get("wall_s") is None else f"{r['wall_s']:.0f}"),
        ]


TASK = RecallDistance()
