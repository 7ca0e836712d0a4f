"""The recall_distance task's work: train on distance-binned MQAR, score each bin, find the horizon.

`run(cell, ctx) -> [row]`: the worker's entry point. The model is the recall task's
(`recall.measure.build_cell_model`: the registry's LM at the cell's width and depth, seeded,
position embeddings N(0, pos_init_std)); it trains with the recall trainer (`trainer.fit`: the
steps-or-seconds budget; the row records both steps done and seconds spent) on `layout`'s
training set, then is scored on the disjoint test set: a prediction is the argmax over the
whole vocabulary at an answer position, and `score` counts the hits per bin.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gam_bench.analysis.horizon import effective_horizon
from gam_bench.cell import Cell
from gam_bench.precision import autocast_for
from gam_bench.tasks.base import SILENT, RunContext
from gam_bench.tasks.recall.measure import build_cell_model, position_init, predict_hits, trained_columns
from gam_bench.tasks.recall.trainer import fit
from gam_bench.tasks.recall_distance import layout
from gam_bench.tasks.recall_distance.settings import RecallDistanceSettings


def run(cell: Cell, ctx: RunContext = SILENT) -> list[dict[str, Any]]:
    """Train the cell's model for its budget and score each distance bin: one row."""
    settings: RecallDistanceSettings = cell.settings
    T, lr = cell.seq_len, settings.scalar_lr()
    edges = settings.edges(T)
    splits = layout.train_test(
        edges, T, settings.vocab_size, settings.train_examples, settings.test_examples, settings.seed
    )
    model = build_cell_model(cell)
    device = torch.device(cell.device)
    autocast = lambda: autocast_for(cell)  # noqa: E731
    trainer = fit(model, settings, lr, splits.train, device, ctx.progress, 10.0, autocast, cell.dtype)
    hits = predict_hits(model, splits.test, settings.eval_batch_size, device, autocast)  # (N, T)
    scores = score(hits, splits.test, settings.bins(T))
    ctx.progress(f"recall_distance: horizon {scores['horizon_bin']}, accuracy {scores['accuracy']:.3f}")
    return [
        {
            **scores,
            "lr": lr,
            "vocab_size": settings.vocab_size,
            "pos_init": position_init(model, settings),
            "train_examples": len(splits.train),
            "test_rejected": splits.rejected,
            "budget": settings.budget_text,
            "train_loss": trainer.final_loss,
            "dataset": "mqar-distance",
            **trained_columns(trainer.clock.steps, trainer.clock.train_s, T, model, cell),
        }
    ]


def score(hits: np.ndarray, data: layout.DistanceData, bins: list[tuple[int, int]]) -> dict[str, Any]:
    """Per-bin counts, intervals and the horizon from hits (N, T) on `data` (pair i in bins[i])."""
    n, K = len(data), data.num_kv_pairs
    answer_hits = np.take_along_axis(hits, data.query_pos, axis=1)  # (N, K): pair i's answer
    correct = answer_hits.sum(axis=0).astype(int).tolist()  # (K,)
    trials = [n] * K
    chance = 1.0 / data.num_values
    result = effective_horizon(bins, correct, trials, chance)
    return {
        "accuracy": float(answer_hits.mean()) if n else float("nan"),
        "correct": int(sum(correct)),
        "n_answers": n * K,
        "n_examples": n,
        "num_kv_pairs": K,
        "chance": chance,
        "chance_in_context": 1.0 / K,
        "distance_lo": [b.lo for b in result.bins],
        "distance_hi": [b.hi for b in result.bins],
        "bin_correct": [b.correct for b in result.bins],
        "bin_trials": [b.trials for b in result.bins],
        "bin_accuracy": [b.accuracy for b in result.bins],
        "bin_ci_low": [b.ci_low for b in result.bins],
        "bin_ci_high": [b.ci_high for b in result.bins],
        "bin_p_value": [b.p_value for b in result.bins],
        "horizon": result.tokens,
        "horizon_bin": result.label,
        "best_bin_accuracy": result.best_accuracy,
    }
