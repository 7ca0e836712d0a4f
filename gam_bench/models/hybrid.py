"""The hybrid of today's LLMs: Gated DeltaNet layers with one attention layer in `attn_every`.

`gated-deltanet-hybrid`: layer i is the paper's Transformer block (SDPA attention, its KV cache)
when (i + 1) % attn_every == 0, else a Gated DeltaNet block (models/gated_deltanet.py, its
config and backends); one block of the hybrid (block level) is one period of attn_every
layers, attention last. Decoding: a `HybridState`, one state per layer of the period (the
attention layer's KV cache grows with the context). Paper configuration (d 512, 6 layers,
vocab 10k, attn_every 4): 22.9M parameters.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from gam_bench.errors import UserError
from gam_bench.models.decode import DecodeState
from gam_bench.models.gated_deltanet import GatedDeltaNetBlock, GatedDeltaNetConfig, deltanet_backends
from gam_bench.models.lm import PositionalLM
from gam_bench.models.registry import register_model
from gam_bench.models.transformer import TransformerBlock, TransformerConfig


def _attention_block(config: GatedDeltaNetConfig) -> TransformerBlock:
    """The paper's Transformer block (SDPA) at the hybrid's width."""
    fields = ("vocab_size", "max_seq_len", "d_model", "n_layers", "dropout")
    return TransformerBlock(TransformerConfig(**{f: getattr(config, f) for f in fields}, n_heads=config.attn_heads))


def layer_kinds(config: GatedDeltaNetConfig, n_layers: int) -> list[str]:
    """ "attention" or "deltanet" per layer: attention when (i + 1) % attn_every == 0."""
    every = config.attn_every
    return ["attention" if every and (i + 1) % every == 0 else "deltanet" for i in range(n_layers)]


@dataclasses.dataclass
class HybridState(DecodeState):
    """One state per layer of the period: GatedDeltaNetState or a KV cache."""

    layers: list


class HybridBlock(nn.Module):
    """One period of the hybrid: attn_every - 1 Gated DeltaNet blocks, then an attention block."""

    decode_state_grows = True  # the attention layer's KV cache

    def __init__(self, config: GatedDeltaNetConfig):
        super().__init__()
        if config.attn_every < 1:
            raise UserError("gated-deltanet-hybrid config field attn_every must be >= 1 (got 0)")
        self.layers = nn.ModuleList(_make_layer(kind, config) for kind in layer_kinds(config, config.attn_every))

    @property
    def backend(self) -> str:
        return hybrid_backend(self.layers)

    decode_backend = "torch-step+sdpa"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)  # (B, T, D)
        return x

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, HybridState]:
        states = []
        for layer in self.layers:
            x, s = layer.prefill(x)  # (B, T, D)
            states.append(s)
        return x, HybridState(states)

    def decode(self, x: torch.Tensor, state: HybridState) -> tuple[torch.Tensor, HybridState]:
        states = []
        for layer, s in zip(self.layers, state.layers):
            x, s = layer.decode(x, s)  # (B, 1, D)
            states.append(s)
        return x, HybridState(states)


def _make_layer(kind: str, config: GatedDeltaNetConfig) -> nn.Module:
    return _attention_block(config) if kind == "attention" else GatedDeltaNetBlock(config)


def hybrid_backend(layers) -> str:
    """ "<deltanet backend>+<attention impl>", e.g. "torch-chunked+sdpa"."""
    kinds = {type(layer): layer.backend for layer in layers}
    return "+".join(kinds[cls] for cls in (GatedDeltaNetBlock, TransformerBlock) if cls in kinds)


@register_model(
    "gated-deltanet-hybrid",
    family="hybrid",
    config=GatedDeltaNetConfig,
    block=HybridBlock,
    defaults={"attn_every": 4},
    backends=deltanet_backends,
    description="Gated DeltaNet layers with one attention layer in every four",
)
class HybridLM(PositionalLM):
    """Gated DeltaNet blocks, every attn_every-th one the paper's attention block instead."""

    def __init__(self, config: GatedDeltaNetConfig):
        kinds = iter(layer_kinds(config, config.n_layers))
        super().__init__(config, lambda cfg: _make_layer(next(kinds), cfg))

    @property
    def backend(self) -> str:
        return hybrid_backend(self.blocks)

    decode_backend = "torch-step+sdpa"
