"""The recall task: train a registered LM on MQAR (tasks.mqar) and score held-out recall.

`run(cell, ctx) -> [row]`: the worker's entry point. The cell carries one point of the
suite's `recall:` sweep (scalar num_kv_pairs and lr); the model is the registry's LM with
the cell's overrides (d_model and n_layers as resolved by pre-flight), vocab_size from the
settings and max_seq_len = seq_len. The one row holds the results of `train_and_evaluate`
in store columns (`row`), with `step` = optimiser steps and `wall_s` = training seconds.

`build_model` makes a registered LM for the task (learned position embeddings re-drawn
N(0, pos_init_std), see RecallSettings). `train_and_evaluate(model, settings, seq_len,
device)` draws a training and a disjoint test set, trains (trainer.fit: the shared step,
warmup then cosine decay over the steps or seconds budget, the loss at the answer positions
only) and returns one dict of results. `build_cell_model`, `predict_hits` and
`trained_columns` serve the recall_distance task too.

Scoring: a prediction is the argmax over the whole vocabulary at an answer position.
`accuracy` = correct / n_answers over every answer of every test example. The answers of
one example share its context, so they are not independent trials; `probe_correct` of
`n_examples` scores one answer per example (a seeded random pair of each), which are
independent trials for a binomial interval. `chance` = 1 / number of value tokens (a
uniform guess of a value); `chance_in_context` = 1 / num_kv_pairs (a guess among the values
in the example's own context, which needs no key-specific recall).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from typing import Any

import numpy as np
import torch
from torch import nn

from gam_bench.cell import Cell
from gam_bench.errors import UserError
from gam_bench.models.backends import backend_reason
from gam_bench.models.builder import build_for, build_module, resolve_config
from gam_bench.models.lm import PositionalLM
from gam_bench.precision import autocast_for
from gam_bench.tasks.base import SILENT, RunContext
from gam_bench.tasks.recall import mqar
from gam_bench.tasks.recall.settings import RecallSettings, TrainingSettings
from gam_bench.tasks.recall.trainer import fit


def build_model(name: str, settings: RecallSettings, seq_len: int, d_model: int, n_layers: int = 2, **overrides: Any):
    """The registry's LM `name` for MQAR at `seq_len` (models/builder.py, as a recall cell needs it),
    its weights seeded by `settings.seed`, then `init_positions`."""
    from gam_bench.tasks.recall import Recall

    needs = Recall.needs(settings, seq_len)
    config = resolve_config(name, {"d_model": d_model, "n_layers": n_layers, **overrides}, needs)
    torch.manual_seed(settings.seed)
    return init_positions(build_module(name, "lm", config), settings)


def init_positions(model: nn.Module, settings: TrainingSettings) -> nn.Module:
    """Learned position embeddings (a PositionalLM's `pos_embedding`) re-drawn N(0,
    settings.pos_init_std) unless that is None; `position_init` names what was done."""
    if settings.pos_init_std is not None and isinstance(model, PositionalLM):
        nn.init.normal_(model.pos_embedding.weight, std=settings.pos_init_std)
    return model


def position_init(model: nn.Module, settings: TrainingSettings) -> str:
    """How `build_model` initialised the position embeddings of `model` under `settings`."""
    if not isinstance(model, PositionalLM):
        return "none (no learned positions)"
    return "model default" if settings.pos_init_std is None else f"normal(std={settings.pos_init_std})"


def run(cell: Cell, ctx: RunContext = SILENT) -> list[dict[str, Any]]:
    """Train the cell's model on MQAR for its budget and score the test set: one row."""
    model = build_cell_model(cell)
    result = train_and_evaluate(
        model,
        cell.settings,
        cell.seq_len,
        cell.device,
        progress=ctx.progress,
        autocast=lambda: autocast_for(cell),
        dtype=cell.dtype,
    )
    return [row(result, model, cell)]


# `train_and_evaluate` results stored under their own names (store.py, the recall block).
RESULT_COLUMNS = (
    "accuracy",
    "correct",
    "n_answers",
    "probe_correct",
    "n_examples",
    "chance",
    "chance_in_context",
    "num_kv_pairs",
    "lr",
    "vocab_size",
    "power_a",
    "pos_init",
    "train_examples",
    "test_rejected",
    "budget",
    "train_loss",
)


def build_cell_model(cell: Cell) -> nn.Module:
    """The recall cell's LM (models/builder.py: the config pre-flight resolved), seeded by its
    settings, then `init_positions`."""
    if cell.d_model is None or cell.n_layers is None:
        raise UserError(f"model {cell.model!r}: a recall cell needs d_model and n_layers (run it through pre-flight)")
    torch.manual_seed(cell.settings.seed)
    model, _config = build_for(cell)
    return init_positions(model, cell.settings)


def row(result: dict[str, Any], model: nn.Module, cell: Cell) -> dict[str, Any]:
    """Store columns of one `train_and_evaluate` result for the cell's `model` (`build_cell_model`)."""
    trained = trained_columns(result["steps"], result["train_s"], result["seq_len"], model, cell)
    return {**{k: result[k] for k in RESULT_COLUMNS}, "dataset": "mqar", **trained}


def trained_columns(steps: int, train_s: float, seq_len: int, model: nn.Module, cell: Cell) -> dict[str, Any]:
    """The training columns of a recall-style row: steps done and seconds spent (`step`, `wall_s`),
    tokens, parameters, backend, and the width and depth `build_cell_model` built."""
    tokens = steps * cell.settings.batch_size * seq_len
    return {
        "split": "test",
        "step": steps,
        "wall_s": train_s,
        "tokens_seen": tokens,
        "tokens_per_s": tokens / train_s if train_s > 0 else None,
        "params": sum(p.numel() for p in model.parameters()),
        "backend": str(getattr(model, "backend", "") or ""),
        "backend_reason": backend_reason(model),
        "d_model": cell.d_model,
        "n_layers": cell.n_layers,
    }


def train_and_evaluate(
    model: nn.Module,
    settings: RecallSettings,
    seq_len: int,
    device: str | torch.device = "cpu",
    *,
    progress: Callable[[str], None] | None = None,
    progress_every_s: float = 10.0,
    autocast: Callable[[], ContextManager] | None = None,
    dtype: str = "float32",
) -> dict[str, Any]:
    """Train `model` on MQAR at `seq_len` for the settings' budget, then score the test set.

    `settings` must be one point of a sweep (scalar num_kv_pairs and lr, see
    RecallSettings.points). `progress(message)` is called about every `progress_every_s`
    seconds of training and once at the end; `autocast()` makes a fresh autocast context
    for each forward (None: float32); a float16 `dtype` trains with the shared GradScaler.
    """
    K, lr = settings.scalar()
    s = settings
    splits = mqar.train_test(K, seq_len, s.vocab_size, s.power_a, s.train_examples, s.test_examples, s.seed)
    device = torch.device(device)
    train = fit(model, settings, lr, splits.train, device, progress, progress_every_s, autocast, dtype)
    scores = evaluate(model, splits.test, settings.eval_batch_size, device, seed=settings.seed, autocast=autocast)
    result = {
        **scores,
        "num_kv_pairs": K,
        "lr": lr,
        "seq_len": seq_len,
        "vocab_size": settings.vocab_size,
        "power_a": settings.power_a,
        "pos_init": position_init(model, settings),
        "train_examples": len(splits.train),
        "test_rejected": splits.rejected,
        "chance": 1.0 / splits.test.num_values,
        "chance_in_context": 1.0 / K,
        "train_loss": train.final_loss,
        "steps": train.clock.steps,
        "train_s": train.clock.train_s,
        "budget": settings.budget_text,
    }
    if progress is not None:
        accuracy, n, chance = result["accuracy"], result["n_answers"], result["chance"]
        progress(f"recall: accuracy {accuracy:.3f} over {n} answers (chance {chance:.2g})")
    return result


@torch.no_grad()
def predict_hits(
    model: nn.Module,
    data: mqar.MQARData,
    batch_size: int,
    device: str | torch.device = "cpu",
    autocast: Callable[[], ContextManager] | None = None,
) -> np.ndarray:
    """(N, T) bool: where the argmax over the whole vocabulary equals the target (never where
    the target is IGNORE_INDEX). The model is left in the training mode it had."""
    was_training = model.training
    model.eval()
    device = torch.device(device)
    hits = []
    for start in range(0, len(data), batch_size):
        inputs = torch.from_numpy(data.inputs[start : start + batch_size]).to(device)  # (B, T)
        targets = torch.from_numpy(data.targets[start : start + batch_size]).to(device)  # (B, T)
        with (autocast or contextlib.nullcontext)():
            predicted = model(inputs).argmax(dim=-1)  # (B, T)
        hits.append((predicted == targets).cpu().numpy())  # (B, T)
    model.train(was_training)
    return np.concatenate(hits) if hits else np.zeros(data.inputs.shape, dtype=bool)  # (N, T)


def evaluate(
    model: nn.Module,
    data: mqar.MQARData,
    batch_size: int,
    device: str | torch.device = "cpu",
    *,
    seed: int = 0,
    autocast: Callable[[], ContextManager] | None = None,
) -> dict[str, Any]:
    """Argmax accuracy at the answer positions of `data`, and of one seeded probe answer per example.

    Returns accuracy, correct, n_answers, probe_correct, n_examples."""
    hit = predict_hits(model, data, batch_size, device, autocast)  # (N, T)
    mask = data.answer_mask  # (N, T)
    n, k = len(data), data.num_kv_pairs
    answer_hits = hit[mask].reshape(n, k)  # (N, K), answers in position order
    probe = np.random.default_rng([seed, 2]).integers(0, k, size=n)  # (N,) one answer per example
    correct, probe_correct = int(answer_hits.sum()), int(answer_hits[np.arange(n), probe].sum())
    return {
        "accuracy": correct / (n * k) if n else math.nan,
        "correct": correct,
        "n_answers": n * k,
        "probe_correct": probe_correct,
        "n_examples": n,
    }
