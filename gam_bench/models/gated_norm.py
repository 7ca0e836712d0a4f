"""Gated RMSNorm, the output norm of Mamba2 and Gated DeltaNet (key: `weight`).

  norm_before_gate=False (mamba_ssm's RMSNormGated, Mamba2's default): rmsnorm(x * silu(z)) * w
  norm_before_gate=True  (fla's FusedRMSNormGated, Gated DeltaNet's o_norm): rmsnorm(x) * w * silu(z)

The RMS is taken over groups of `group_size` channels (Mamba2's ngroups; one head in fla).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GatedRMSNorm(nn.Module):
    """(..., D) activations and (..., D) gate -> (..., D)."""

    def __init__(self, dim: int, eps: float, norm_before_gate: bool, group_size: int | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps, self.norm_before_gate = eps, norm_before_gate
        self.group_size = dim if group_size is None else group_size

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x, gate = x.float(), F.silu(z.float())
        if not self.norm_before_gate:
            x = x * gate
        if self.group_size == x.shape[-1]:
            x = F.rms_norm(x, (self.group_size,), self.weight.float(), self.eps)  # one fused op, fwd and bwd
        else:
            groups = x.unflatten(-1, (-1, self.group_size))  # (..., D / group, group)
            x = F.rms_norm(groups, (self.group_size,), None, self.eps).flatten(-2) * self.weight.float()
        if self.norm_before_gate:
            x = x * gate
        return x.to(dtype)
