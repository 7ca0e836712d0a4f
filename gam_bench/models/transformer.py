"""The paper's Transformer baseline: pre-LN GPT blocks, learned positions, tied head.

Keys as in the official script: blocks.{i}.ln_1, blocks.{i}.attn.c_attn (d -> 3d),
blocks.{i}.attn.c_proj, blocks.{i}.ln_2, blocks.{i}.ffn.0, blocks.{i}.ffn.2.

Two attention implementations (`impl`):
  naive: the paper's materialised causal mask + softmax over (B, H, T, T) scores, the one that
         runs out of memory at long lengths;
  sdpa:  F.scaled_dot_product_attention(is_causal=True), flash / memory-efficient kernels.
Decoding (gam_bench.models.decode): the state is a KV cache per layer, keys and values of
every position seen, (B, H, T, head_dim) each, grown by one position per decoded token (as
HF's DynamicCache). A decoded query is one position and may see the whole cache, so no mask;
both impls decode with their own attention (naive: materialised scores; sdpa: SDPA). Bytes:
2 * B * T * d_model * element size per layer.

The official script also keeps the causal mask as a persistent buffer `attn.bias`
(1, 1, 256, 256). We build the mask per call instead (a max_seq_len^2 buffer per layer would
dominate memory in long sweeps), and drop that key when loading an official checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from gam_bench.models.config import LMConfig
from gam_bench.models.decode import DecodeState, check_one_token
from gam_bench.models.lm import PositionalLM
from gam_bench.models.registry import register_model


class TransformerConfig(LMConfig):
    """Transformer fields on top of the shared ones. Defaults are the paper's."""

    n_heads: int = Field(8, ge=1)
    impl: Literal["naive", "sdpa"] = "sdpa"

    @model_validator(mode="after")
    def _heads_divide_width(self) -> TransformerConfig:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        return self


@dataclasses.dataclass
class KVCache(DecodeState):
    """Keys and values of every position seen, (B, H, T, head_dim) each."""

    k: torch.Tensor
    v: torch.Tensor


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention, (B, T, D) -> (B, T, D)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.n_heads, self.impl, self.p_drop = config.n_heads, config.impl, config.dropout
        self.c_attn = nn.Linear(config.d_model, 3 * config.d_model)
        self.c_proj = nn.Linear(config.d_model, config.d_model)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.register_load_state_dict_pre_hook(_drop_official_mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prefill(x)[0]

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, KVCache]:
        """Causal attention over x (B, T, D), and the cache of its keys and values."""
        q, k, v = self._qkv(x)  # (B, H, T, hd) each
        # Contiguous copies: views would keep the whole (B, T, 3D) projection alive.
        return self._out(self._attend(q, k, v, causal=True)), KVCache(k.contiguous(), v.contiguous())

    def decode(self, x: torch.Tensor, cache: KVCache) -> tuple[torch.Tensor, KVCache]:
        """One position x (B, 1, D) attending to the cache and itself; the cache grows by one."""
        check_one_token(x)
        q, k, v = self._qkv(x)  # (B, H, 1, hd) each
        cache = KVCache(torch.cat([cache.k, k], dim=2), torch.cat([cache.v, v], dim=2))  # (B, H, T+1, hd)
        return self._out(self._attend(q, cache.k, cache.v, causal=False)), cache

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, T, D = x.shape
        q, k, v = self.c_attn(x).split(D, dim=2)  # (B, T, D) each
        return tuple(t.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2) for t in (q, k, v))

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
        """q (B, H, Tq, hd) against k, v (B, H, Tk, hd) -> (B, H, Tq, hd). causal: Tq == Tk."""
        if self.impl == "naive":
            return self._naive(q, k, v, causal)
        p = self.p_drop if self.training else 0.0
        return F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=causal)

    def _out(self, y: torch.Tensor) -> torch.Tensor:
        B, H, T, hd = y.shape
        y = y.transpose(1, 2).reshape(B, T, H * hd)  # (B, T, D)
        return self.resid_dropout(self.c_proj(y))

    def _naive(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True) -> torch.Tensor:
        """The paper's attention: q, k, v (B, H, T, hd) -> (B, H, T, hd); masked when causal."""
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.shape[-1]))  # (B, H, Tq, Tk)
        if causal:
            T = q.shape[2]
            mask = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()  # (T, T)
            att = att.masked_fill(~mask, float("-inf"))
        att = self.attn_dropout(torch.softmax(att, dim=-1))
        return att @ v


def _drop_official_mask(module, state_dict, prefix, *args) -> None:
    """Official checkpoints carry the causal mask buffer `attn.bias`; it is not a weight."""
    state_dict.pop(prefix + "bias", None)


class TransformerBlock(nn.Module):
    """Pre-LN block: x + attn(ln_1(x)), then x + ffn(ln_2(x)). (B, T, D) -> (B, T, D)."""

    decode_state_grows = True  # the KV cache gains a position per token

    def __init__(self, config: TransformerConfig):
        super().__init__()
        D = config.d_model
        self.ln_1 = nn.LayerNorm(D)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(D)
        self.ffn = nn.Sequential(nn.Linear(D, 4 * D), nn.GELU(), nn.Linear(4 * D, D), nn.Dropout(config.dropout))

    @property
    def backend(self) -> str:
        return self.attn.impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))  # (B, T, D)
        return x + self.ffn(self.ln_2(x))  # (B, T, D)

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, KVCache]:
        a, cache = self.attn.prefill(self.ln_1(x))  # (B, T, D)
        x = x + a
        return x + self.ffn(self.ln_2(x)), cache  # (B, T, D)

    def decode(self, x: torch.Tensor, cache: KVCache) -> tuple[torch.Tensor, KVCache]:
        a, cache = self.attn.decode(self.ln_1(x), cache)  # (B, 1, D)
        x = x + a
        return x + self.ffn(self.ln_2(x)), cache  # (B, 1, D)


def _backends() -> list[str]:
    return ["naive", "sdpa"]


@register_model(
    "transformer-naive",
    family="transformer",
    config=TransformerConfig,
    block=TransformerBlock,
    defaults={"impl": "naive"},
    backends=_backends,
    description="The paper's Transformer, materialised O(T^2) attention",
)
@register_model(
    "transformer",
    family="transformer",
    config=TransformerConfig,
    block=TransformerBlock,
    defaults={"impl": "sdpa"},
    backends=_backends,
    description="The paper's Transformer, SDPA attention (flash on GPU)",
)
class Transformer(PositionalLM):
    """GPT-style causal LM; keys match the official checkpoint layout."""

    def __init__(self, config: TransformerConfig):
        super().__init__(config, TransformerBlock)
