"""Benchmark-only model `gam-probe`: the GAM block with an injected code regression.

The regression is a real extra op in the block's step, the kind of extra work a refactor
leaves behind: K projections `y = y + (y @ W) * 0` after the block (a matmul, a multiply and
an add forward, their gradients backward), and E element-wise ops `y = y + y * 0` (a
multiply and an add, a smaller cost); the output is unchanged. K and E are the config fields
`probe_ops` and `probe_elementwise` (so variants are cells of one sweep, counted and timed
side by side); `GAM_BENCH_PROBE_OPS` adds to K (read when the block is built, so the *same*
cell runs with and without it, exactly as two commits would). Its cost as a share of the step is measured, not assumed
(benchmarks/gate_counts.py). Loaded through a suite's `plugins: [gate_probe_models]` with
this folder on PYTHONPATH.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from gam_bench.models.gam import GAM, GAMBlock, GAMConfig
from gam_bench.models.registry import register_model

PROBE_ENV = "GAM_BENCH_PROBE_OPS"


class ProbeConfig(GAMConfig):
    probe_ops: int = 0  # extra projections per block (plus GAM_BENCH_PROBE_OPS)
    probe_elementwise: int = 0  # extra element-wise multiply-adds per block
    probe_copy: int = 0  # does nothing: tells apart copies of one variant in one sweep (gate_counts.py --copies)


class ProbeBlock(GAMBlock):
    """GAMBlock, then K zero-weighted projections; (B, T, D) -> (B, T, D), values unchanged."""

    def __init__(self, config: ProbeConfig) -> None:
        super().__init__(config)
        self.probe_ops = config.probe_ops + int(os.environ.get(PROBE_ENV, "0"))
        self.probe_elementwise = config.probe_elementwise
        d = config.d_model
        self.probe = nn.Parameter(torch.randn(d, d) / d**0.5, requires_grad=False)  # (D, D)

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:  # (B, T, D)
        y = super().forward(x, *args, **kwargs)  # (B, T, D)
        for _ in range(self.probe_ops):
            y = y + (y @ self.probe) * 0.0  # (B, T, D)
        for _ in range(self.probe_elementwise):
            y = y + y * 0.0  # (B, T, D)
        return y


@register_model(
    "gam-probe",
    family="gam",
    config=ProbeConfig,
    block=ProbeBlock,
    description="benchmark-only: GAM with GAM_BENCH_PROBE_OPS extra projections per block",
)
class GAMProbe(GAM):
    pass
