"""Sliding-window attention: causal attention within a window of W tokens, O(T W), the
"O(N) attention" baseline. Position t attends to t-W+1..t.

The paper's Transformer block (gam_bench.models.transformer: same keys ln_1, attn.c_attn,
attn.c_proj, ln_2, ffn, same parameters, 24.2M at the paper's configuration) with the
attention restricted to the window; `impl`:
  blocked: the sequence in blocks of W queries; block n attends to the keys of blocks n-1
           and n (2W keys) under a band mask, one SDPA call over all blocks at once, so
           time and memory are O(T W). A sequence no longer than W is plain causal SDPA.
           Queries are zero-padded to a multiple of W (the pad is cut off again).
  naive:   the reference twin: the full (T, T) scores under a materialised band mask.
Decoding (gam_bench.models.decode): a ring KV cache of W slots per layer, keys and values
(B, H, W, head_dim) each; token p is written to slot p mod W, so the cache holds the last W
tokens; attention order does not matter, only which slots are filled (slots <= p before
the ring wraps). The position is a 0-dim int64 tensor in the state, so shapes never change
(a decode step can be captured). Bytes: 2 * B * W * d_model * element size + 8 per layer,
constant in the context length.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from gam_bench.models.decode import DecodeState, check_one_token
from gam_bench.models.lm import PositionalLM
from gam_bench.models.mixer_block import MixerBlock
from gam_bench.models.registry import register_model
from gam_bench.models.transformer import CausalSelfAttention, TransformerConfig


class SWAConfig(TransformerConfig):
    """Transformer fields plus the window; `impl` picks the blocked form or the naive twin."""

    window: int = Field(256, ge=1, description="tokens each position attends to (itself included)")
    impl: Literal["blocked", "naive"] = "blocked"


@dataclasses.dataclass
class RingKVCache(DecodeState):
    """The last W keys and values, (B, H, W, head_dim) each, token p in slot p mod W; and how
    many tokens were seen, a 0-dim int64 tensor."""

    k: torch.Tensor
    v: torch.Tensor
    position: torch.Tensor


def band_mask(T_q: int, T_k: int, offset: int, window: int, device) -> torch.Tensor:
    """(T_q, T_k) bool: query i (position offset + i) may see key j (position j) iff
    offset + i - window < j <= offset + i."""
    t = torch.arange(T_q, device=device)[:, None] + offset
    s = torch.arange(T_k, device=device)[None, :]
    return (s <= t) & (s > t - window)


class SlidingWindowAttention(CausalSelfAttention):
    """Multi-head causal attention within a window, (B, T, D) -> (B, T, D)."""

    def __init__(self, config: SWAConfig):
        super().__init__(config)
        self.window = config.window

    @property
    def backend(self) -> str:
        return "blocked-sdpa" if self.impl == "blocked" else "naive"

    decode_backend = "ring-kv-sdpa"

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, RingKVCache]:
        """Windowed attention over x (B, T, D), and the ring cache of its last W keys and values."""
        q, k, v = self._qkv(x)  # (B, H, T, hd) each
        y = self._blocked(q, k, v) if self.impl == "blocked" else self._naive_band(q, k, v)
        return self._out(y), self._ring(k, v)

    def decode(self, x: torch.Tensor, cache: RingKVCache) -> tuple[torch.Tensor, RingKVCache]:
        """One position x (B, 1, D): written into its slot, then attends to the filled slots."""
        check_one_token(x)
        q, k, v = self._qkv(x)  # (B, H, 1, hd) each
        slot = (cache.position % self.window).reshape(1)  # (1,)
        cache.k.index_copy_(2, slot, k)
        cache.v.index_copy_(2, slot, v)
        filled = torch.arange(self.window, device=x.device) <= cache.position  # (W,)
        y = F.scaled_dot_product_attention(q, cache.k, cache.v, attn_mask=filled[None, None, None, :])
        return self._out(y), RingKVCache(cache.k, cache.v, cache.position + 1)

    def _ring(self, k: torch.Tensor, v: torch.Tensor) -> RingKVCache:
        """Ring cache after keys/values k, v (B, H, T, hd): positions T-W..T-1 in slots p mod W."""
        B, H, T, hd = k.shape
        first = max(0, T - self.window)
        slots = torch.arange(first, T, device=k.device) % self.window  # (min(T, W),)
        ring_k, ring_v = (k.new_zeros(B, H, self.window, hd) for _ in range(2))
        ring_k.index_copy_(2, slots, k[:, :, first:])
        ring_v.index_copy_(2, slots, v[:, :, first:])
        return RingKVCache(ring_k, ring_v, torch.tensor(T, dtype=torch.int64, device=k.device))

    def _blocked(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q, k, v (B, H, T, hd) -> (B, H, T, hd): the first W queries causally, then blocks
        of W queries against their 2W keys under one shared band mask (4-D SDPA calls, so
        the CPU flash kernel runs, not the math fallback)."""
        B, H, T, hd = q.shape
        W, p = self.window, self.p_drop if self.training else 0.0
        head = F.scaled_dot_product_attention(q[:, :, :W], k[:, :, :W], v[:, :, :W], dropout_p=p, is_causal=True)
        if T <= W:
            return head
        pad = -T % W
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))  # (B, H, N * W, hd)
        N = (T + pad) // W
        qb = q[:, :, W:].reshape(B, H * (N - 1), W, hd)  # blocks 1..N-1
        kb, vb = (t.view(B, H, N, W, hd) for t in (k, v))
        k2, v2 = (torch.cat([t[:, :, :-1], t[:, :, 1:]], dim=3).flatten(1, 2) for t in (kb, vb))  # (B, H (N-1), 2W, hd)
        mask = band_mask(W, 2 * W, W, W, q.device)  # (W, 2W): key j is position (n-1) W + j
        rest = F.scaled_dot_product_attention(qb, k2, v2, attn_mask=mask, dropout_p=p)  # (B, H (N-1), W, hd)
        return torch.cat([head, rest.view(B, H, (N - 1) * W, hd)], dim=2)[:, :, :T]

    def _naive_band(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The reference: full (T, T) scores under the band mask, softmax, values."""
        T = q.shape[2]
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.shape[-1])  # (B, H, T, T)
        att = att.masked_fill(~band_mask(T, T, 0, self.window, q.device), float("-inf"))
        return self.attn_dropout(torch.softmax(att, dim=-1)) @ v


class SWABlock(MixerBlock):
    """The Transformer block with sliding-window attention, (B, T, D) -> (B, T, D)."""

    decode_state_grows = False  # the ring cache: W slots whatever the context

    def __init__(self, config: SWAConfig):
        super().__init__(config.d_model, SlidingWindowAttention(config), 4, config.dropout)


def _backends() -> list[str]:
    return ["blocked", "naive"]


@register_model(
    "swa",
    family="swa",
    config=SWAConfig,
    block=SWABlock,
    backends=_backends,
    description="Sliding-window attention (window W, default 256): O(T W)",
)
class SlidingWindowTransformer(PositionalLM):
    """The paper's Transformer LM with sliding-window attention in every layer."""

    def __init__(self, config: SWAConfig):
        super().__init__(config, SWABlock)

    @property
    def decode_backend(self) -> str:
        return self.blocks[0].decode_backend
