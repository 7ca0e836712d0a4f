"""The depthwise causal short convolution + SiLU of Mamba2 and Gated DeltaNet, time-major.

    silu(Conv1d(C, C, K, groups=C, padding=K-1)(x.transpose(1, 2))[..., :T]).transpose(1, 2)

for x (B, T, C) as the input projections make it. Two implementations of the same math:
  torch: nn.Conv1d on a contiguous (B, C, T) copy, cut back to T, then SiLU on a contiguous
         (B, T, C) copy (the reference; on strided tensors the CPU backward of conv and SiLU is
         several times slower);
  fused: Mamba's fused CPU kernel, `gam_bench.models.cpu_scan.conv_silu` (one pass forward, one
         backward, time-major: no transposed copies and not the CPU's slow depthwise-conv
         backward), in float32 (float64 stays float64), also under autocast.
A model that offers the fused one names it in its `backend` ("cpu-fused") and says why when the
kernel cannot build (`cpu_scan.unavailable_reason()`), as Mamba does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gam_bench.models import cpu_scan


def conv_silu(x: torch.Tensor, conv: nn.Conv1d, fused: bool) -> torch.Tensor:
    """x (B, T, C) -> (B, T, C); fused: the CPU kernel (CPU inputs only)."""
    if fused:
        compute = torch.promote_types(x.dtype, torch.float32)
        bias = conv.bias if conv.bias is not None else x.new_zeros(x.shape[-1])  # fla's convs have none
        return cpu_scan.conv_silu(*(t.to(compute) for t in (x, conv.weight, bias)))
    T = x.shape[1]
    y = conv(x.transpose(1, 2).contiguous())[..., :T]  # (B, C, T), causal
    return F.silu(y.transpose(1, 2).contiguous())  # (B, T, C)
