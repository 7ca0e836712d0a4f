"""The training budget and the learning-rate schedule that follows it.

`BudgetClock` counts what a run has consumed (optimiser steps, target tokens, training
seconds) and how far through its budget (of steps, epochs, tokens or seconds) it is.
`warmup_cosine` is the paper's schedule
as a LambdaLR: linear warmup over `warmup_steps` (factor step / warmup), then cosine
decay to zero over the rest of the budget. For an epoch budget this is exactly the
paper's step-based formula; for a token or wall-clock budget the cosine follows the
fraction of tokens or seconds used, so every budget ends at learning rate zero.
"""

from __future__ import annotations

import math
from typing import Any

import torch


class BudgetClock:
    """What a training run has consumed, and the fraction of its budget that is.

    budget: exactly one of `steps`, `epochs`, `tokens` or `seconds` set (the perplexity
    task's Budget has no steps, the recall task's only steps and seconds)."""

    def __init__(self, budget: Any, steps_per_epoch: int, tokens_per_epoch: int):
        self.budget = budget
        self.tokens_per_epoch = tokens_per_epoch
        epochs, steps = getattr(budget, "epochs", None), getattr(budget, "steps", None)
        self.total_steps = steps if steps is not None else math.ceil(epochs * steps_per_epoch) if epochs else None
        self.steps = 0
        self.tokens = 0
        self.train_s = 0.0

    def record_step(self, n_tokens: int, seconds: float) -> None:
        self.steps += 1
        self.tokens += n_tokens
        self.train_s += seconds

    def progress(self) -> float:
        """Fraction of the budget used, in [0, 1] (may pass 1 by the last step's overshoot)."""
        if self.total_steps is not None:
            return self.steps / self.total_steps
        if getattr(self.budget, "tokens", None) is not None:
            return self.tokens / self.budget.tokens
        return self.train_s / self.budget.seconds

    def done(self) -> bool:
        return self.progress() >= 1.0

    @property
    def epoch(self) -> float:
        """Epochs of training data seen so far (fractional)."""
        return self.tokens / self.tokens_per_epoch


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, clock: BudgetClock
) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR: factor step / warmup_steps during warmup, then 0.5 (1 + cos(pi p)) where p
    is the fraction of the budget left after warmup that has been used. Step it after
    `clock.record_step`."""
    warm_end: list[float] = []  # budget progress when warmup ended

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / warmup_steps
        if not warm_end:
            warm_end.append(min(clock.progress(), 1.0))
        start = warm_end[0]
        p = (clock.progress() - start) / (1.0 - start) if start < 1.0 else 1.0
        return 0.5 * (1.0 + math.cos(math.pi * min(max(p, 0.0), 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
