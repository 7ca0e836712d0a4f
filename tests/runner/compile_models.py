"""Test-only models for the compiled-cell tests (suites load them with `plugins: [compile_models]`).

test-recompile  a linear block that changes an attribute dynamo guards on at every call, so it
                recompiles at every compiled call
test-nocompile  a linear block that runs eagerly but that torch.compile refuses: its forward
                breaks the graph inside `torch._dynamo.error_on_graph_break(True)`, so dynamo
                raises (Unsupported) instead of falling back to eager for that frame
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from gam_bench.models.registry import register_model


class NoCompileConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vocab_size: int = 31
    max_seq_len: int = 64
    d_model: int = 8
    n_layers: int = 1


class NoCompileBlock(nn.Module):
    def __init__(self, config: NoCompileConfig) -> None:
        super().__init__()
        self.proj = nn.Linear(config.d_model, config.d_model)

    backend = "test"

    @torch._dynamo.error_on_graph_break(True)
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, T, D)
        torch._dynamo.graph_break()  # a no-op in eager; an error under compile
        return x + self.proj(x)


class NoCompileLM(nn.Module):
    def __init__(self, config: NoCompileConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.block = NoCompileBlock(config)
        self.head = nn.Linear(config.d_model, config.vocab_size)

    backend = "test"

    def forward(self, idx: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, V)
        return self.head(self.block(self.embed(idx)))


register_model("test-nocompile", family="test", config=NoCompileConfig, block=NoCompileBlock)(NoCompileLM)


class RecompileBlock(nn.Module):
    """A linear block that counts its calls in a Python int it reads: every call changes an
    attribute dynamo guards on (static ints, `dynamic=False`), so every compiled call recompiles."""

    backend = "test"

    def __init__(self, config: NoCompileConfig) -> None:
        super().__init__()
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, T, D)
        self.calls += 1
        return x + self.proj(x) * (self.calls > 0)  # always 1: the guard changes, the output does not


register_model("test-recompile", family="test", config=NoCompileConfig, block=RecompileBlock)(NoCompileLM)
