"""The one language-model training step, shared by the throughput task (`train_step` mode)
and the training tasks (perplexity, recall: through training/loop.py), so they never drift
apart (nanoGPT's bench.py copies its step; we don't).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager

import torch
import torch.nn.functional as F
from torch import nn

from gam_bench.training.divergence import check_step


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


def make_scaler(dtype: torch.dtype | str, device: torch.device | str) -> torch.amp.GradScaler | None:
    """A `torch.amp.GradScaler` for float16 steps (as users train in float16), else None.

    float16's range is narrow: the gradient of a mean loss over B*T positions is ~1/(B*T) per
    element and underflows to zero at long lengths; the scaler multiplies the loss (2**16 at
    first) before backward and unscales the gradients before the optimizer.
    """
    if dtype not in (torch.float16, "float16"):
        return None
    return torch.amp.GradScaler(torch.device(device).type)


def backward(loss: torch.Tensor, scaler: torch.amp.GradScaler | None = None) -> None:
    """loss.backward(), through the scaler when there is one (float16)."""
    (scaler.scale(loss) if scaler is not None else loss).backward()


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    autocast: ContextManager | None = None,
    grad_clip: float | None = 1.0,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = lm_loss,
) -> float:
    """One optimizer step on (inputs (B, T), targets (B, T)); returns the loss as a float.
    loss_fn(logits (B, T, V), targets (B, T)) -> scalar: next-token cross-entropy by default
    (the recall task takes it at the answer positions only).

    Gradients are set to None first, so repeated calls never accumulate. With a `scaler`
    (float16: `make_scaler`) the loss is scaled for backward, gradients are unscaled before
    clipping, and the scaler skips the step on inf/nan gradients and updates its scale.
    A non-finite loss, or a non-finite gradient norm without a scaler, raises
    `divergence.Diverged` before the optimizer step, so the model keeps its last finite weights
    (the divergence can then be located on them). Reading the loss there is the step's one
    device sync, as before; on an accelerator it now comes before the optimizer's kernels.
    """
    optimizer.zero_grad(set_to_none=True)
    with autocast or contextlib.nullcontext():
        logits = model(inputs)  # (B, T, V)
        loss = loss_fn(logits, targets)
    backward(loss, scaler)
    if scaler is not None:
        scaler.unscale_(optimizer)
    norm = gradient_norm(model, grad_clip)
    value = loss.detach().item()
    check_step(value, norm.item(), scaled=scaler is not None)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return value


def gradient_norm(model: nn.Module, clip: float | None) -> torch.Tensor:
    """The total gradient norm (a 0-d tensor), clipping to `clip` first when it is set."""
    params = [p for p in model.parameters() if p.grad is not None]
    if clip is not None:
        return torch.nn.utils.clip_grad_norm_(params, clip)
    return torch.nn.utils.get_total_norm([p.grad for p in params])
