"""A complete gam-bench model plugin: a causal convolution mixer.

Name this module in a suite's `plugins:` list (it is looked up on sys.path, then in the suite
file's folder) and its models run like the built-in ones, in the parent and in every worker:

    gam-bench run examples/plugin/suite.yaml
    gam-bench models --plugin conv_mixer     # (from this folder, or with it on PYTHONPATH)

Each block mixes tokens with a depthwise causal convolution (kernel `kernel_size`), then a
position-wise MLP, both pre-norm and residual. Time and memory are linear in the length.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from gam_bench.models import register_model


class ConvMixerConfig(BaseModel):
    """The fields every model has (vocab_size, max_seq_len, d_model, n_layers, dropout), then its own.
    `extra="forbid"`: a misspelt field in a suite's axes is an error before anything runs."""

    model_config = ConfigDict(extra="forbid")

    vocab_size: int = 10_000
    max_seq_len: int = 256
    d_model: int = Field(512, ge=1)
    n_layers: int = Field(6, ge=1)
    dropout: float = 0.0
    kernel_size: int = Field(4, ge=1)


class ConvMixerBlock(nn.Module):
    """(B, T, D) -> (B, T, D); output t depends on inputs t - kernel_size + 1 .. t only."""

    backend = "torch"  # stored in the row's `backend` column

    def __init__(self, config: ConvMixerConfig) -> None:
        super().__init__()
        d = config.d_model
        self.kernel_size = config.kernel_size
        self.norm1 = nn.LayerNorm(d)
        self.conv = nn.Conv1d(d, d, config.kernel_size, groups=d)  # depthwise, no padding: causal below
        self.norm2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D)
        h = self.norm1(x).transpose(1, 2)  # (B, D, T)
        h = F.pad(h, (self.kernel_size - 1, 0))  # (B, D, T + k - 1): pad the past only
        x = x + self.dropout(self.conv(h).transpose(1, 2))  # (B, T, D)
        return x + self.dropout(self.mlp(self.norm2(x)))  # (B, T, D)


@register_model(
    "conv-mixer",
    family="conv-mixer",
    config=ConvMixerConfig,
    block=ConvMixerBlock,
    description="example plugin: depthwise causal conv + MLP blocks (docs: models and plugins)",
    backends=lambda: ["torch"],
)
class ConvMixerLM(nn.Module):
    """idx (B, T) -> logits (B, T, vocab_size)."""

    backend = "torch"

    def __init__(self, config: ConvMixerConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.pos = nn.Embedding(config.max_seq_len, config.d_model)
        self.blocks = nn.ModuleList(ConvMixerBlock(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.head.weight = self.embed.weight  # tied

    def forward(self, idx: torch.Tensor) -> torch.Tensor:  # (B, T)
        T = idx.shape[1]
        if T > self.config.max_seq_len:
            raise ValueError(f"sequence of {T} tokens > max_seq_len {self.config.max_seq_len}")
        x = self.embed(idx) + self.pos(torch.arange(T, device=idx.device))  # (B, T, D)
        for block in self.blocks:
            x = block(x)  # (B, T, D)
        return self.head(self.norm(x))  # (B, T, V)
