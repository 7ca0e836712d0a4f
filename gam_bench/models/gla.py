"""GLA, gated linear attention (arXiv 2312.06635): a linear-attention recurrence with a
data-dependent decay per key dimension,

    S_t = diag(exp(gk_t)) S_{t-1} + k_t^T v_t,   o_t = q_t S_t / sqrt(K),
    gk_t = logsigmoid(gk_proj(x_t)) / gate_logit_normalizer   (gk_proj: d -> 16 -> key dim)

as flash-linear-attention's `GatedLinearAttention` layer (defaults: expand_k 0.5, expand_v
1, 4 heads, low-rank gate 16, normaliser 16, swish output gate), in the shared pre-norm
block with the paper's FFN (gam_bench.models.mixer_block); see linear_attention.py for the
layer, its backends and its decode state, and ops/gla.py for the op and its reference twin.

At the paper's configuration (d 512, 6 layers, vocab 10k, learned positions) this is 24.23M
parameters against GAM's 22.6M (+7%): fla's defaults as they are, no knob moved.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from gam_bench.models.backends import fla_available
from gam_bench.models.config import LMConfig
from gam_bench.models.linear_attention import GatedLinearMixer
from gam_bench.models.lm import PositionalLM
from gam_bench.models.mixer_block import MixerBlock
from gam_bench.models.ops.gla import DEFAULT_CHUNK_SIZE, chunk_gla
from gam_bench.models.registry import register_model


class GLAConfig(LMConfig):
    """GLA fields on top of the shared ones; defaults are fla's GatedLinearAttention's."""

    n_heads: int = Field(4, ge=1)
    expand_k: float = Field(0.5, gt=0)
    expand_v: float = Field(1.0, gt=0)
    gate_low_rank_dim: int = Field(16, ge=1)
    gate_logit_normalizer: float = Field(16.0, gt=0)
    ffn_mult: int = Field(4, ge=1, description="FFN hidden width / d_model (the paper's 4)")
    chunk_size: int = Field(DEFAULT_CHUNK_SIZE, ge=1, description="steps per chunk of the torch op")
    backend: Literal["auto", "torch", "fla"] = "auto"


class GatedLinearAttention(GatedLinearMixer):
    """fla's GatedLinearAttention layer (no short conv, no feature map), (B, T, D) -> (B, T, D)."""

    FLA_MODULE, FLA_OP, FAMILY = "fla.ops.gla", "chunk_gla", "GLA"

    def __init__(self, config: GLAConfig):
        D = config.d_model
        key_dim, value_dim = int(D * config.expand_k), int(D * config.expand_v)
        super().__init__(D, config.n_heads, key_dim, value_dim, config.backend, config.chunk_size)
        self.gk_proj = nn.Sequential(
            nn.Linear(D, config.gate_low_rank_dim, bias=False), nn.Linear(config.gate_low_rank_dim, key_dim, bias=True)
        )
        self.gate_logit_normalizer = config.gate_logit_normalizer
        self._finish_init(D, value_dim)

    def _qkv_gate(self, x: torch.Tensor, offset) -> tuple[torch.Tensor, ...]:
        K, V = self.head_k_dim, self.head_v_dim
        q, k, gk = (self._heads(proj(x), K) for proj in (self.q_proj, self.k_proj, self.gk_proj))  # (B, T, H, K)
        gk = F.logsigmoid(gk.float()) / self.gate_logit_normalizer  # (B, T, H, K), <= 0
        return q, k, self._heads(self.v_proj(x), V), gk

    def _torch_op(self, q, k, v, gate, **kw):
        return chunk_gla(q, k, v, gate, chunk_size=self.chunk_size, **kw)


class GLABlock(MixerBlock):
    """Pre-norm block around GatedLinearAttention, (B, T, D) -> (B, T, D)."""

    decode_state_grows = False  # the (B, H, K, V) state

    def __init__(self, config: GLAConfig):
        super().__init__(config.d_model, GatedLinearAttention(config), config.ffn_mult, config.dropout)


def _backends() -> list[str]:
    return ["torch", "fla"] if fla_available("fla.ops.gla") else ["torch"]


@register_model(
    "gla",
    family="gla",
    config=GLAConfig,
    block=GLABlock,
    backends=_backends,
    description="Gated linear attention (arXiv 2312.06635), decay per key dim",
)
class GLA(PositionalLM):
    """The GLA language model in the paper's LM shell (learned positions, tied head)."""

    def __init__(self, config: GLAConfig):
        super().__init__(config, GLABlock)

    @property
    def decode_backend(self) -> str:
        return self.blocks[0].decode_backend
