"""Test-only model `perf-block` for the regression-gate tests and measurements.

Its work, memory and failures are set by environment variables, read when the block is
built, so the *same* cell (same config, same cell_id) can be made slower, hungrier or
failing, exactly as a code change would. Spawned sweep workers inherit the environment of
the process that starts the sweep. Loaded through a suite's `plugins: [perf_models]`
(this folder is the suite file's folder, so workers can import it).

    GAM_BENCH_PERF_WORK=1.3       # x1.3 the matmuls of every forward (default 1)
    GAM_BENCH_PERF_EXTRA_MB=64    # hold 64 MiB more while the block exists (default 0)
    GAM_BENCH_PERF_FAIL_AT=512    # raise in forward when seq_len >= 512 (default: never)
"""

from __future__ import annotations

import os

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from gam_bench.models.registry import register_model

WORK_ENV = "GAM_BENCH_PERF_WORK"
EXTRA_MB_ENV = "GAM_BENCH_PERF_EXTRA_MB"
FAIL_ENV = "GAM_BENCH_PERF_FAIL_AT"


class PerfConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vocab_size: int = 97
    max_seq_len: int = 1024
    d_model: int = 64
    n_layers: int = 1
    dropout: float = 0.0
    n_matmuls: int = 20  # work at GAM_BENCH_PERF_WORK=1


class PerfBlock(nn.Module):
    """x -> tanh(x W) repeated round(n_matmuls * work) times; (B, T, D) -> (B, T, D)."""

    backend = "test"

    def __init__(self, config: PerfConfig) -> None:
        super().__init__()
        d = config.d_model
        self.weight = nn.Parameter(torch.randn(d, d) / d**0.5)  # (D, D)
        self.reps = max(1, round(config.n_matmuls * float(os.environ.get(WORK_ENV, "1"))))
        extra = int(float(os.environ.get(EXTRA_MB_ENV, "0")) * 2**20) // 4
        self.register_buffer("ballast", torch.ones(extra), persistent=False)  # touched pages count in RSS
        self.fail_at = int(os.environ.get(FAIL_ENV, "0"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D)
        if self.fail_at and x.shape[1] >= self.fail_at:
            raise RuntimeError(f"perf-block: deliberate failure at seq_len {x.shape[1]}")
        for _ in range(self.reps):
            x = torch.tanh(x @ self.weight)  # (B, T, D)
        return x


@register_model(
    "perf-block",
    family="test",
    config=PerfConfig,
    block=PerfBlock,
    description="test-only: work, memory and failures set by environment variables",
)
class PerfLM(nn.Module):
    """Embedding -> n_layers PerfBlocks -> tied head; idx (B, T) -> logits (B, T, V)."""

    backend = "test"

    def __init__(self, config: PerfConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(PerfBlock(config) for _ in range(config.n_layers))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:  # (B, T)
        x = self.embed(idx)  # (B, T, D)
        for block in self.blocks:
            x = block(x)
        return x @ self.embed.weight.T  # (B, T, V)
