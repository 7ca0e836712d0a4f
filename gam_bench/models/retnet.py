"""RetNet's multi-scale retention (arXiv 2307.08621): GLA's op with a fixed scalar decay per
head, g_h = log(1 - 2^(-5-h)), after rotary position embeddings on q and k (fla's
`MultiScaleRetention`: expand_k 1, expand_v 2, 8 heads, swish output gate, RMSNorm per
head). The op is `chunk_simple_gla` / fla's `chunk_simple_gla` with that gate: the same code
as GLA with g broadcast over the key dimension, not a second kernel.

The block is the shared pre-norm block (gam_bench.models.mixer_block) with an FFN of width
2 d, as RetNet's own configurations (FFN 2d beside retention's 8d^2 keeps a layer at 12d^2,
a Transformer layer's). At the paper's configuration (d 512, 6 layers) that is 24.15M
parameters against GAM's 22.6M (+7%); the knob moved is the FFN width (ffn_mult 2; with 4:
30.4M, +35%).

Decoding adds the position (a 0-dim int64 tensor, 8 bytes) to the (B, H, K, V) state: the
rotary phase of the next token.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from pydantic import Field

from gam_bench.models.backends import fla_available
from gam_bench.models.config import LMConfig
from gam_bench.models.linear_attention import GatedLinearMixer, LinearAttentionState
from gam_bench.models.lm import PositionalLM
from gam_bench.models.mixer_block import MixerBlock
from gam_bench.models.ops.gla import DEFAULT_CHUNK_SIZE, chunk_simple_gla, retention_log_decay
from gam_bench.models.registry import register_model

ROTARY_BASE = 10_000.0


class RetNetConfig(LMConfig):
    """RetNet fields on top of the shared ones; defaults are fla's MultiScaleRetention's."""

    n_heads: int = Field(8, ge=1)
    expand_k: float = Field(1.0, gt=0)
    expand_v: float = Field(2.0, gt=0)
    ffn_mult: int = Field(2, ge=1, description="FFN hidden width / d_model (RetNet's 2)")
    chunk_size: int = Field(DEFAULT_CHUNK_SIZE, ge=1, description="steps per chunk of the torch op")
    backend: Literal["auto", "torch", "fla"] = "auto"


@dataclasses.dataclass
class RetentionState(LinearAttentionState):
    """The (B, H, K, V) state and how many tokens it has seen, a 0-dim int64 tensor."""

    position: torch.Tensor


def rotary(x: torch.Tensor, offset) -> torch.Tensor:
    """Rotary embedding (fla's RotaryEmbedding, non-interleaved halves) of x (B, T, H, K) at
    positions offset..offset+T-1; offset an int or a 0-dim tensor."""
    T, K = x.shape[1], x.shape[-1]
    half = K // 2
    inv_freq = ROTARY_BASE ** -(torch.arange(0, half, device=x.device, dtype=torch.float32) * 2 / K)  # (K/2,)
    pos = torch.arange(T, device=x.device, dtype=torch.float32) + offset  # (T,)
    angle = pos[:, None] * inv_freq  # (T, K/2)
    cos, sin = angle.cos()[None, :, None], angle.sin()[None, :, None]  # (1, T, 1, K/2)
    x1, x2 = x[..., :half].float(), x[..., half : 2 * half].float()
    rotated = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, x[..., 2 * half :].float()], dim=-1)
    return rotated.to(x.dtype)  # (B, T, H, K)


class MultiScaleRetention(GatedLinearMixer):
    """fla's MultiScaleRetention layer (no short conv, no feature map), (B, T, D) -> (B, T, D)."""

    FLA_MODULE, FLA_OP, FAMILY = "fla.ops.simple_gla", "chunk_simple_gla", "RetNet"

    def __init__(self, config: RetNetConfig):
        D = config.d_model
        key_dim, value_dim = int(D * config.expand_k), int(D * config.expand_v)
        super().__init__(D, config.n_heads, key_dim, value_dim, config.backend, config.chunk_size)
        self._finish_init(D, value_dim)

    def _qkv_gate(self, x: torch.Tensor, offset) -> tuple[torch.Tensor, ...]:
        B, T, _ = x.shape
        q, k = (rotary(self._heads(proj(x), self.head_k_dim), offset) for proj in (self.q_proj, self.k_proj))
        g = retention_log_decay(self.n_heads, x.device).expand(B, T, self.n_heads)  # (B, T, H)
        return q, k, self._heads(self.v_proj(x), self.head_v_dim), g

    def _torch_op(self, q, k, v, gate, **kw):
        return chunk_simple_gla(q, k, v, gate, chunk_size=self.chunk_size, **kw)

    def _make_state(self, state: torch.Tensor, position) -> RetentionState:
        if not isinstance(position, torch.Tensor):
            position = torch.tensor(position, dtype=torch.int64, device=state.device)
        return RetentionState(state, position)


class RetNetBlock(MixerBlock):
    """Pre-norm block around MultiScaleRetention, (B, T, D) -> (B, T, D)."""

    decode_state_grows = False  # the (B, H, K, V) state and a position

    def __init__(self, config: RetNetConfig):
        super().__init__(config.d_model, MultiScaleRetention(config), config.ffn_mult, config.dropout)


def _backends() -> list[str]:
    return ["torch", "fla"] if fla_available("fla.ops.simple_gla") else ["torch"]


@register_model(
    "retnet",
    family="retnet",
    config=RetNetConfig,
    block=RetNetBlock,
    backends=_backends,
    description="RetNet retention (arXiv 2307.08621): GLA's op, fixed decay per head",
)
class RetNet(PositionalLM):
    """The RetNet language model in the paper's LM shell (learned positions, tied head)."""

    def __init__(self, config: RetNetConfig):
        super().__init__(config, RetNetBlock)

    @property
    def decode_backend(self) -> str:
        return self.blocks[0].decode_backend
