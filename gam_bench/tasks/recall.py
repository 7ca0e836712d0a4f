"""The recall task: train a registered LM on MQAR (tasks.mqar) and score held-out recall.

`run(cell, ctx) -> [row]`: the worker's entry point. The cell carries one point of the
suite's `recall:` sweep (scalar num_kv_pairs and lr); the model is the registry's LM with
the cell's overrides (d_model and n_layers as resolved by pre-flight), vocab_size from the
settings and max_seq_len = seq_len. The one row holds the results of `train_and_evaluate`
in store columns (`row`), with `step` = optimiser steps and `wall_s` = training seconds.

`build_model` makes a registered LM for the task (learned position embeddings re-drawn
N(0, pos_init_std), see RecallSettings). `train_and_evaluate(model, settings, seq_len,
device)` draws a training and a disjoint test set, trains with the shared AdamW
(`step.make_optimizer`) under a steps or seconds budget (warmup, then cosine decay to zero
over the budget, `schedule.warmup_cosine`), with the cross-entropy taken only at the
answer positions, and returns one dict of results.

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
import time
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gam_bench.cell import Cell
from gam_bench.errors import UserError
from gam_bench.models import registry
from gam_bench.models.backends import backend_reason
from gam_bench.models.lm import PositionalLM
from gam_bench.tasks import mqar
from gam_bench.tasks.divergence import Diverged, check_step, locate
from gam_bench.tasks.precision import autocast_for, require_trainable
from gam_bench.tasks.recall_settings import RecallSettings
from gam_bench.tasks.schedule import warmup_cosine
from gam_bench.tasks.step import gradient_norm, make_optimizer

TRAIN_LOSS_WINDOW = 20  # train_loss is the mean over the last this many steps


def build_model(name: str, settings: RecallSettings, seq_len: int, d_model: int, n_layers: int = 2, **overrides: Any):
    """The registry's LM `name` for MQAR at `seq_len`, its weights seeded by `settings.seed`.

    Learned position embeddings (a PositionalLM's `pos_embedding`) are then re-drawn
    N(0, settings.pos_init_std) unless that is None; `position_init` names what was done."""
    torch.manual_seed(settings.seed)
    config = {"dropout": settings.dropout, **overrides}
    model = registry.build(
        name, vocab_size=settings.vocab_size, max_seq_len=seq_len, d_model=d_model, n_layers=n_layers, **config
    )
    if settings.pos_init_std is not None and isinstance(model, PositionalLM):
        nn.init.normal_(model.pos_embedding.weight, std=settings.pos_init_std)
    return model


def position_init(model: nn.Module, settings: RecallSettings) -> str:
    """How `build_model` initialised the position embeddings of `model` under `settings`."""
    if not isinstance(model, PositionalLM):
        return "none (no learned positions)"
    return "model default" if settings.pos_init_std is None else f"normal(std={settings.pos_init_std})"


def run(cell: Cell, ctx: Any = None) -> list[dict[str, Any]]:
    """Train the cell's model on MQAR for its budget and score the test set: one row."""
    require_trainable(cell, "recall")
    model = build_cell_model(cell)
    report = getattr(ctx, "progress", None)
    result = train_and_evaluate(
        model,
        cell.recall,
        cell.seq_len,
        cell.device,
        progress=report if callable(report) else None,
        autocast=lambda: autocast_for(cell),
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

# Set by the model from the settings; an override of either is refused rather than ignored.
_SET_BY_TASK = ("vocab_size", "max_seq_len")


def build_cell_model(cell: Cell) -> nn.Module:
    """`build_model` for a recall cell: its overrides, with d_model and n_layers as pre-flight resolved them."""
    overrides = dict(cell.overrides)
    for field in _SET_BY_TASK:
        if field in overrides:
            raise UserError(
                f"model {cell.model!r}: the recall task sets {field} itself; drop {field}={overrides[field]!r}"
            )
    if cell.d_model is None or cell.n_layers is None:
        raise UserError(f"model {cell.model!r}: a recall cell needs d_model and n_layers (run it through pre-flight)")
    overrides.pop("d_model", None)
    overrides.pop("n_layers", None)
    return build_model(cell.model, cell.recall, cell.seq_len, cell.d_model, cell.n_layers, **overrides)


def row(result: dict[str, Any], model: nn.Module, cell: Cell) -> dict[str, Any]:
    """Store columns of one `train_and_evaluate` result for the cell's `model` (`build_cell_model`)."""
    tokens = result["steps"] * cell.recall.batch_size * result["seq_len"]
    return {
        **{k: result[k] for k in RESULT_COLUMNS},
        "dataset": "mqar",
        "split": "test",
        "step": result["steps"],
        "wall_s": result["train_s"],
        "tokens_seen": tokens,
        "tokens_per_s": tokens / result["train_s"] if result["train_s"] > 0 else None,
        "params": sum(p.numel() for p in model.parameters()),
        "backend": str(getattr(model, "backend", "") or ""),
        "backend_reason": backend_reason(model),
        "d_model": cell.d_model,  # what build_cell_model built
        "n_layers": cell.n_layers,
    }


def masked_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the answer positions only. logits (B, T, V), targets (B, T) -> scalar (fp32)."""
    B, T, V = logits.shape
    return F.cross_entropy(logits.reshape(B * T, V).float(), targets.reshape(B * T), ignore_index=mqar.IGNORE_INDEX)


class _Clock:
    """Steps and training seconds used, and the fraction of the budget that is (for warmup_cosine)."""

    def __init__(self, settings: RecallSettings):
        self.budget = settings.budget
        self.steps, self.train_s = 0, 0.0

    def progress(self) -> float:
        if self.budget.steps is not None:
            return self.steps / self.budget.steps
        return self.train_s / self.budget.seconds

    def done(self) -> bool:
        return self.progress() >= 1.0


def train_and_evaluate(
    model: nn.Module,
    settings: RecallSettings,
    seq_len: int,
    device: str | torch.device = "cpu",
    *,
    progress: Callable[[str], None] | None = None,
    progress_every_s: float = 10.0,
    autocast: Callable[[], ContextManager] | None = None,
) -> dict[str, Any]:
    """Train `model` on MQAR at `seq_len` for the settings' budget, then score the test set.

    `settings` must be one point of a sweep (scalar num_kv_pairs and lr, see
    RecallSettings.points). `progress(message)` is called about every `progress_every_s`
    seconds of training and once at the end; `autocast()` makes a fresh autocast context
    for each forward (None: float32).
    """
    K, lr = settings.scalar()
    s = settings
    splits = mqar.train_test(K, seq_len, s.vocab_size, s.power_a, s.train_examples, s.test_examples, s.seed)
    device = torch.device(device)
    model = model.to(device)
    train = _Trainer(model, settings, lr, splits.train, device, autocast or contextlib.nullcontext)
    train.run(progress, progress_every_s)
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
        "budget": f"{settings.budget.kind}={getattr(settings.budget, settings.budget.kind)}",
    }
    if progress is not None:
        accuracy, n, chance = result["accuracy"], result["n_answers"], result["chance"]
        progress(f"recall: accuracy {accuracy:.3f} over {n} answers (chance {chance:.2g})")
    return result


class _Trainer:
    """One training run: shuffled batches of the training set, masked loss, budget clock."""

    def __init__(self, model, settings: RecallSettings, lr: float, data: mqar.MQARData, device, autocast):
        self.model, self.settings, self.device, self.autocast = model, settings, device, autocast
        self.inputs = torch.from_numpy(data.inputs)  # (N, T)
        self.targets = torch.from_numpy(data.targets)  # (N, T)
        self.optimizer = make_optimizer(model, lr, tuple(settings.betas), settings.weight_decay)
        self.clock = _Clock(settings)
        self.scheduler = warmup_cosine(self.optimizer, settings.warmup_steps, self.clock)
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.losses: list[float] = []

    @property
    def final_loss(self) -> float:
        recent = self.losses[-TRAIN_LOSS_WINDOW:]
        return sum(recent) / len(recent) if recent else math.nan

    def batches(self):
        n, b = self.inputs.shape[0], self.settings.batch_size
        while True:
            order = torch.randperm(n, generator=self.generator)
            for start in range(0, n - min(b, n) + 1, b):
                idx = order[start : start + b]
                yield self.inputs[idx].to(self.device), self.targets[idx].to(self.device)

    def run(self, progress: Callable[[str], None] | None, every_s: float) -> None:
        self.model.train()
        last_report = 0.0
        for inputs, targets in self.batches():
            if self.clock.done():
                break
            self.losses.append(self.step(inputs, targets))
            if progress is not None and self.clock.train_s - last_report >= every_s:
                last_report = self.clock.train_s
                progress(f"recall: step {self.clock.steps} loss {self.final_loss:.4f} ({self.clock.train_s:.0f} s)")

    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> float:
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            loss = masked_loss(self.model(inputs), targets)  # logits (B, T, V)
        loss.backward()
        norm = gradient_norm(self.model, self.settings.grad_clip)
        value = loss.detach().item()
        try:
            check_step(value, norm.item())
        except Diverged as exc:
            raise self._placed(exc, inputs, targets) from None
        self.optimizer.step()
        self.clock.steps += 1
        self.clock.train_s += time.perf_counter() - start
        self.scheduler.step()
        return value

    def _placed(self, exc: Diverged, inputs: torch.Tensor, targets: torch.Tensor) -> Diverged:
        """`exc` with the step, the tokens before it, the last finite loss and where it appears."""

        def loss() -> torch.Tensor:
            with self.autocast():
                return masked_loss(self.model(inputs), targets)  # logits (B, T, V)

        last = self.losses[-1] if self.losses else None
        where = locate(self.model, loss)
        return exc.at(
            step=self.clock.steps + 1, tokens=self.clock.steps * inputs.numel(), last_finite_loss=last, where=where
        )


@torch.no_grad()
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
    was_training = model.training
    model.eval()
    device = torch.device(device)
    hits = []
    for start in range(0, len(data), batch_size):
        inputs = torch.from_numpy(data.inputs[start : start + batch_size]).to(device)  # (B, T)
        targets = torch.from_numpy(data.targets[start : start + batch_size]).to(device)  # (B, T)
        with (autocast or contextlib.nullcontext)():
            predicted = model(inputs).argmax(dim=-1)  # (B, T)
        hits.append((predicted == targets).cpu().numpy())  # (B, T); never true where targets is IGNORE_INDEX
    model.train(was_training)
    hit = np.concatenate(hits) if hits else np.zeros(data.inputs.shape, dtype=bool)  # (N, T)
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
