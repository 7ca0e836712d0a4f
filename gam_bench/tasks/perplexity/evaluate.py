"""Validation loss and perplexity of a language model, and the unigram baseline.

The loss is token-weighted over the whole split (every token but the first is a target
exactly once, see batching.eval_windows), so batch sizes and a short final window do not
bias it. The loss per context position (the target's index inside its window) is also
kept and summarised in equal-width position buckets: a model that uses long context has
lower loss at later positions.
"""

from __future__ import annotations

import contextlib
import math
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gam_bench.text.batching import eval_windows


@dataclass(frozen=True)
class EvalResult:
    loss: float  # mean next-token cross-entropy, nats per token
    n_tokens: int  # targets scored
    position_loss: list[float]  # mean loss per position bucket (NaN for an empty bucket)
    bucket_edges: list[int]  # bucket i covers positions [edges[i], edges[i+1])

    @property
    def ppl(self) -> float:
        return math.exp(self.loss) if self.loss < 700 else math.inf


def bucket_edges(seq_len: int, n_buckets: int) -> list[int]:
    """Equal-width edges 0 = e0 < e1 < ... = seq_len (fewer buckets if seq_len < n_buckets)."""
    return sorted({round(i * seq_len / n_buckets) for i in range(n_buckets + 1)})


@torch.no_grad()
def evaluate(
    model: nn.Module,
    tokens: torch.Tensor,
    seq_len: int,
    batch_size: int,
    *,
    n_buckets: int = 8,
    autocast: ContextManager | None = None,
) -> EvalResult:
    """Token-weighted loss of `model` over `tokens` (N,), in eval mode (restored afterwards)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loss_sum = torch.zeros(seq_len, dtype=torch.float64)  # (L,) per position
    count = torch.zeros(seq_len, dtype=torch.float64)  # (L,)
    try:
        for inputs, targets in eval_windows(tokens, seq_len, batch_size):
            losses = _token_losses(model, inputs.to(device), targets.to(device), autocast)  # (b, T)
            T = losses.shape[1]
            loss_sum[:T] += losses.sum(0).double().cpu()
            count[:T] += losses.shape[0]
    finally:
        model.train(was_training)
    return _summarise(loss_sum, count, bucket_edges(seq_len, n_buckets))


def _token_losses(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, autocast: ContextManager | None
) -> torch.Tensor:
    with autocast or contextlib.nullcontext():
        logits = model(inputs)  # (b, T, V)
    b, T, V = logits.shape
    losses = F.cross_entropy(logits.reshape(b * T, V).float(), targets.reshape(b * T), reduction="none")
    return losses.view(b, T)  # (b, T)


def _summarise(loss_sum: torch.Tensor, count: torch.Tensor, edges: list[int]) -> EvalResult:
    n = int(count.sum().item())
    if n == 0:
        raise ValueError("no validation tokens to score")
    buckets = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        c = count[lo:hi].sum().item()
        buckets.append(loss_sum[lo:hi].sum().item() / c if c else math.nan)
    return EvalResult(loss=loss_sum.sum().item() / n, n_tokens=n, position_loss=buckets, bucket_edges=list(edges))


def unigram_perplexity(train_ids: np.ndarray, val_ids: np.ndarray, vocab_size: int) -> float:
    """Perplexity on val_ids (N,) of the add-one-smoothed unigram model of train_ids.

    The floor a language model must beat to show it learned anything beyond token
    frequencies. Like `evaluate`, the first validation token is not scored.
    """
    counts = np.bincount(train_ids, minlength=vocab_size).astype(np.float64) + 1.0  # (V,)
    log_p = np.log(counts / counts.sum())  # (V,)
    return float(np.exp(-log_p[val_ids[1:]].mean()))
