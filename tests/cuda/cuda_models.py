"""Test-only models for the CUDA tests, loaded by suites through `plugins: [cuda_models]`.

test-cuda-hog      allocates 1 GiB CUDA tensors until the memory cap stops it (an `oom` row)
test-cuda-context  reports in its `backend` whether this worker has a CUDA context
                   (torch.cuda.is_initialized()) after its CPU forward
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from gam_bench.models.registry import register_model


class TinyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vocab_size: int = 31
    max_seq_len: int = 64
    d_model: int = 8
    n_layers: int = 1
    dropout: float = 0.0


class HogBlock(nn.Module):
    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        self.proj = nn.Linear(config.d_model, config.d_model)

    backend = "test"

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, T, D)
        hoard = [torch.ones(2**28, device=x.device) for _ in range(1024)]  # 1 GiB each, up to 1 TiB
        del hoard
        return self.proj(x)


class ContextBlock(HogBlock):
    @property
    def backend(self) -> str:
        return f"cuda_initialized={torch.cuda.is_initialized()}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


register_model("test-cuda-hog", family="test", config=TinyConfig, block=HogBlock, description="test-only")(HogBlock)
register_model("test-cuda-context", family="test", config=TinyConfig, block=ContextBlock, description="test-only")(
    ContextBlock
)
