"""Training a model on MQAR-style data, shared by the recall tasks (recall, recall_distance).

`fit(model, settings, lr, data, device)` trains on `data` (mqar.MQARData or a subclass) for the
settings' budget (`TrainingSettings.budget`: steps or seconds; the clock records both) and
returns the finished `Trainer`: shuffled batches of the training set, seeded by
`settings.seed`, through the shared step (training/loop.py: AdamW from `step.make_optimizer`,
the GradScaler in float16, warmup then cosine decay to zero over the budget), with the
cross-entropy taken only at the answer positions (`masked_loss`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager

import torch
import torch.nn.functional as F
from torch import nn

from gam_bench.tasks.recall import mqar
from gam_bench.tasks.recall.settings import TrainingSettings
from gam_bench.training.loop import TrainingRun
from gam_bench.training.schedule import BudgetClock
from gam_bench.training.step import make_optimizer, make_scaler

TRAIN_LOSS_WINDOW = 20  # train_loss is the mean over the last this many steps


def masked_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the answer positions only. logits (B, T, V), targets (B, T) -> scalar (fp32)."""
    B, T, V = logits.shape
    return F.cross_entropy(logits.reshape(B * T, V).float(), targets.reshape(B * T), ignore_index=mqar.IGNORE_INDEX)


def fit(
    model: nn.Module,
    settings: TrainingSettings,
    lr: float,
    data: mqar.MQARData,
    device: torch.device,
    progress: Callable[[str], None] | None = None,
    progress_every_s: float = 10.0,
    autocast: Callable[[], ContextManager] | None = None,
    dtype: str = "float32",
) -> Trainer:
    """Train `model` (moved to `device`) on `data` at `lr` for the settings' budget: the finished
    `Trainer` (its clock: steps and seconds; `final_loss`). Shared by the recall tasks."""
    model = model.to(device)
    scaler = make_scaler(dtype, device)
    trainer = Trainer(model, settings, lr, data, device, autocast or contextlib.nullcontext, scaler)
    trainer.run(progress, progress_every_s)
    return trainer


class Trainer:
    """One training run: shuffled batches of the training set, the shared step (training/loop.py)
    with the loss at the answer positions, the steps-or-seconds budget."""

    def __init__(
        self, model, settings: TrainingSettings, lr: float, data: mqar.MQARData, device, autocast, scaler=None
    ):
        self.model, self.settings, self.device = model, settings, device
        self.inputs = torch.from_numpy(data.inputs)  # (N, T)
        self.targets = torch.from_numpy(data.targets)  # (N, T)
        n, T = self.inputs.shape
        self.clock = BudgetClock(
            settings.budget, steps_per_epoch=max(n // settings.batch_size, 1), tokens_per_epoch=n * T
        )
        self.training = TrainingRun(
            model,
            make_optimizer(model, lr, tuple(settings.betas), settings.weight_decay),
            self.clock,
            warmup_steps=settings.warmup_steps,
            autocast=autocast,
            grad_clip=settings.grad_clip,
            scaler=scaler,
            loss_fn=masked_loss,
        )
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
            self.losses.append(self.training.step(inputs, targets))
            if progress is not None and self.clock.train_s - last_report >= every_s:
                last_report = self.clock.train_s
                progress(f"recall: step {self.clock.steps} loss {self.final_loss:.4f} ({self.clock.train_s:.0f} s)")
