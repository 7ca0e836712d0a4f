"""Token streams -> training batches and evaluation windows.

Training (the paper's protocol): the stream is cut into non-overlapping blocks of
`seq_len + 1` tokens (the tail shorter than a block is dropped); a block gives inputs
block[:-1] and targets block[1:]. One epoch visits every block exactly once, in a seeded
random order, `batch_size` blocks per batch (the last batch of an epoch may be smaller).

Evaluation: windows of `seq_len` inputs advancing by `seq_len`, each overlapping the
next by one token, so every token but the first is a target exactly once and the whole
split is scored (the final window is shorter).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


def train_blocks(tokens: torch.Tensor, seq_len: int) -> torch.Tensor:
    """(N,) token ids -> (n_blocks, seq_len + 1) non-overlapping blocks."""
    block = seq_len + 1
    n_blocks = tokens.numel() // block
    if n_blocks == 0:
        raise ValueError(f"{tokens.numel()} tokens make no training block of {block}")
    return tokens[: n_blocks * block].view(n_blocks, block)  # (n_blocks, L+1)


def steps_per_epoch(n_blocks: int, batch_size: int) -> int:
    return -(-n_blocks // batch_size)


def epoch_batches(
    blocks: torch.Tensor, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch: every block once, shuffled by `generator`. Yields (inputs, targets), each (b, L)."""
    order = torch.randperm(blocks.shape[0], generator=generator)
    for start in range(0, order.numel(), batch_size):
        chunk = blocks[order[start : start + batch_size]]  # (b, L+1)
        yield chunk[:, :-1], chunk[:, 1:]


def eval_windows(tokens: torch.Tensor, seq_len: int, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Windows covering every target token once. Yields (inputs, targets), each (b, T), T <= seq_len."""
    n_targets = tokens.numel() - 1
    n_full = n_targets // seq_len
    if n_full:
        full = tokens[: n_full * seq_len + 1]
        inputs = full[:-1].view(n_full, seq_len)  # (n_full, L)
        targets = full[1:].view(n_full, seq_len)  # (n_full, L)
        for start in range(0, n_full, batch_size):
            yield inputs[start : start + batch_size], targets[start : start + batch_size]
    tail = n_targets - n_full * seq_len
    if tail:
        rest = tokens[n_full * seq_len :]  # (tail + 1,)
        yield rest[:-1].unsqueeze(0), rest[1:].unsqueeze(0)  # (1, tail)
