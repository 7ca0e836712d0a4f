"""The one language-model training step, shared by the throughput task (`train_step` mode)
and the perplexity task, so the two never drift apart (nanoGPT's bench.py copies its step;
we don't).
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager as ContextManager

import torch
import torch.nn.functional as F
from torch import nn


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy. logits (B, T, V), targets (B, T) -> scalar (fp32)."""
    B, T, V = logits.shape
    return F.cross_entropy(logits.reshape(B * T, V).float(), targets.reshape(B * T))


def make_optimizer(
    model: nn.Module,
    lr: float = 3e-4,
    betas: tuple[float, float] = (0.9, 0.95),
    weight_decay: float = 0.1,
) -> torch.optim.Optimizer:
    """AdamW as in the paper: lr 3e-4, betas (0.9, 0.95), weight decay 0.1."""
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    autocast: ContextManager | None = None,
    grad_clip: float | None = 1.0,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> float:
    """One optimizer step on (inputs (B, T), targets (B, T)); returns the loss as a float.

    Gradients are set to None first, so repeated calls never accumulate.
    """
    optimizer.zero_grad(set_to_none=True)
    with autocast or contextlib.nullcontext():
        logits = model(inputs)  # (B, T, V)
        loss = lm_loss(logits, targets)
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return loss.detach().item()
