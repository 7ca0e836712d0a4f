"""Helpers shared by the chunked ops: fp32 compute, padding to whole chunks, chunk views.

Padding appends steps with zero keys, values and log-decay (and zero beta), which leave the
state unchanged, so outputs at real positions and the final state are those of the unpadded
sequence; the padded outputs are cut off.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Factorised chunk weights multiply factors up to exp(SAFE_LOG_DECAY) (exp(60) = 1.1e26 < 3.4e38,
# float32's largest); a chunk whose decay goes past it takes an op's pairwise form.
SAFE_LOG_DECAY = 60.0


def causal_mask(C: int, device: torch.device) -> torch.Tensor:
    """(C, C) bool: position s may be read at t when s <= t."""
    return torch.ones(C, C, dtype=torch.bool, device=device).tril()


def compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float32, or float64 when any input is float64 (the reference tests run in float64)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def pad_time(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """x (B, T, ...) zero-padded along T to a multiple of `multiple`."""
    extra = -x.shape[1] % multiple
    if extra == 0:
        return x
    pad = [0, 0] * (x.dim() - 2) + [0, extra]
    return F.pad(x, pad)


def to_chunks(x: torch.Tensor, chunk: int) -> torch.Tensor:
    """(B, T, H, ...) with T a multiple of chunk -> (B, H, n, chunk, ...), contiguous (for bmm).

    Split and stacked rather than reshaped: the backward of a reshape is a view, which
    aot-autograd (torch.compile) cannot apply to the non-contiguous gradients bmm hands back."""
    x = torch.stack(x.split(chunk, dim=1), dim=1)  # (B, n, C, H, ...)
    return x.movedim(3, 1).contiguous()  # (B, H, n, C, ...)


def from_chunks(x: torch.Tensor, length: int) -> torch.Tensor:
    """(B, H, n, C, V) -> (B, length, H, V), the padding cut off."""
    B, H, n, C, V = x.shape
    return x.movedim(1, 3).reshape(B, n * C, H, V)[:, :length]


def decay_matrix(gc: torch.Tensor, diagonal: int) -> torch.Tensor:
    """exp(gc_i - gc_j) for j <= i - diagonal (0 on and below the diagonal, 1 strictly below),
    else 0. gc (..., C) is a cumulative log decay; masked before exp, so nothing overflows."""
    C = gc.shape[-1]
    keep = torch.ones(C, C, dtype=torch.bool, device=gc.device).tril(-diagonal)  # (C, C)
    diff = (gc.unsqueeze(-1) - gc.unsqueeze(-2)).masked_fill(~keep, float("-inf"))  # (..., C, C)
    return diff.exp()
