"""One training run's optimiser steps, shared by the training tasks (perplexity, recall).

`TrainingRun.step(inputs, targets)` is the one step of both: the shared `step.train_step`
with the task's loss function (and, in float16, the GradScaler of `step.make_scaler`), timed
into the `schedule.BudgetClock`, then the warmup-cosine schedule stepped. A non-finite loss
or gradient raises `divergence.Diverged` placed at its step (tokens before it, the last
finite loss, and where the first non-finite value appears on a re-run: `divergence.locate`).
What a task iterates over (epochs of text blocks, shuffled MQAR examples) and when it
evaluates stay the task's."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager

import torch
from torch import nn

from gam_bench.training.divergence import Diverged, locate
from gam_bench.training.schedule import BudgetClock, warmup_cosine
from gam_bench.training.step import lm_loss, train_step


class TrainingRun:
    """A model, its optimizer and its budget; `step` trains on one batch."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        clock: BudgetClock,
        *,
        warmup_steps: int,
        autocast: Callable[[], ContextManager],
        grad_clip: float | None,
        scaler: torch.amp.GradScaler | None = None,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = lm_loss,
    ) -> None:
        self.model, self.optimizer, self.clock = model, optimizer, clock
        self.scheduler = warmup_cosine(optimizer, warmup_steps, clock)
        self.autocast, self.grad_clip, self.scaler, self.loss_fn = autocast, grad_clip, scaler, loss_fn
        self.last_finite_loss: float | None = None

    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> float:
        """One optimiser step on (inputs (B, T), targets (B, T)); returns its loss."""
        start = time.perf_counter()
        try:
            loss = train_step(
                self.model,
                self.optimizer,
                inputs,
                targets,
                autocast=self.autocast(),
                grad_clip=self.grad_clip,
                scaler=self.scaler,
                loss_fn=self.loss_fn,
            )
        except Diverged as exc:  # the weights are the failing step's: locate the first non-finite value
            where = locate(self.model, lambda: self._loss(inputs, targets))
            last = self.last_finite_loss
            raise exc.at(
                step=self.clock.steps + 1, tokens=self.clock.tokens, last_finite_loss=last, where=where
            ) from None
        self.clock.record_step(targets.numel(), time.perf_counter() - start)
        self.scheduler.step()
        self.last_finite_loss = loss
        return loss

    def _loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            return self.loss_fn(self.model(inputs), targets)  # logits (B, T, V)
