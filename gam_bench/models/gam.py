"""GAM, Gated Associative Memory (arXiv 2509.00605), faithful to the official implementation.

Block: x -> LN1 -> two paths in parallel
  local:  depthwise causal Conv1d (kernel k, padding k-1, cut back to T)
  global: softmax(x M^T) M over a learned memory bank M (num_memory_slots, d_model)
  fusion: Linear(d, 2d)(x) split into two gates;
          sigmoid(g_local) * local + sigmoid(g_global) * global
then x + fused, then x + FFN(LN2(x)) with FFN = Linear(d, 4d) -> GELU -> Linear(4d, d) -> Dropout.

The global path has two implementations (`impl`):
  reference: materialises the (B, T, slots) scores, as the paper;
  fused:     F.scaled_dot_product_attention with the memory bank as keys and values, scale 1,
             never materialising the scores. The memory is not indexed by position, so no
             mask is needed and causality holds.
The paper's Table 3 ablations are the `fusion` field: "global" (no gate, no conv), "local"
(no gate, no memory) and "sum" (no gate, plain sum); their state dicts lack those modules.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from gam_bench.models.config import LMConfig
from gam_bench.models.lm import PositionalLM
from gam_bench.models.registry import register_model

# Measured on CPU (2 shared cores, torch 2.13), one block, B=2, d=512, 512 slots, forward +
# backward, peak RSS growth in a fresh process: T=4096 reference 340 MiB / fused 324 MiB;
# T=8192 676 / 644 MiB (2048 slots: 772 / 644 MiB: fused does not grow with slots). Time was
# a tie within noise (global path alone at T=8192: 1.12 s reference, 1.16 s fused).
# Fused never keeps the (B, T, slots) weights for backward, so it is the default.
DEFAULT_IMPL = "fused"


class GAMConfig(LMConfig):
    """GAM fields on top of the shared ones. Defaults are the paper's."""

    num_memory_slots: int = Field(512, ge=1)
    conv_kernel_size: int = Field(3, ge=1)
    impl: Literal["reference", "fused"] = DEFAULT_IMPL
    fusion: Literal["gated", "sum", "global", "local"] = "gated"


class GAMBlock(nn.Module):
    """One GAM block, (B, T, D) -> (B, T, D). State-dict keys as in the official script."""

    def __init__(self, config: GAMConfig):
        super().__init__()
        D, k = config.d_model, config.conv_kernel_size
        self.fusion, self.impl = config.fusion, config.impl
        # Creation order as in the official script, so a seed gives the same initial weights.
        if config.fusion != "global":
            self.causal_conv = nn.Conv1d(D, D, kernel_size=k, padding=k - 1, groups=D)
        if config.fusion != "local":
            self.memory_bank = nn.Parameter(torch.randn(config.num_memory_slots, D))
            nn.init.xavier_uniform_(self.memory_bank)
        if config.fusion == "gated":
            self.gate = nn.Linear(D, 2 * D)
        self.ffn = nn.Sequential(nn.Linear(D, 4 * D), nn.GELU(), nn.Linear(4 * D, D), nn.Dropout(config.dropout))
        self.ln1 = nn.LayerNorm(D)
        self.ln2 = nn.LayerNorm(D)

    @property
    def backend(self) -> str:
        """ "reference" or "fused" (the global path), or "local-only" when there is none."""
        return "local-only" if self.fusion == "local" else self.impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self._context(self.ln1(x))  # (B, T, D)
        return x + self.ffn(self.ln2(x))  # (B, T, D)

    def _context(self, h: torch.Tensor) -> torch.Tensor:
        """Fused local and global context of the normalised input h (B, T, D)."""
        if self.fusion == "local":
            return self._local(h)
        if self.fusion == "global":
            return self._global(h)
        if self.fusion == "sum":
            return self._local(h) + self._global(h)
        g_local, g_global = self.gate(h).chunk(2, dim=-1)  # (B, T, D) each
        return torch.sigmoid(g_local) * self._local(h) + torch.sigmoid(g_global) * self._global(h)

    def _local(self, h: torch.Tensor) -> torch.Tensor:
        """Depthwise causal convolution: (B, T, D) -> (B, T, D)."""
        T = h.shape[1]
        out = self.causal_conv(h.transpose(1, 2))  # (B, D, T + k - 1)
        return out[:, :, :T].transpose(1, 2)  # (B, T, D), position t sees t-k+1..t

    def _global(self, h: torch.Tensor) -> torch.Tensor:
        """Associative memory read softmax(h M^T) M: (B, T, D) -> (B, T, D)."""
        M = self.memory_bank  # (S, D)
        if self.impl == "fused":
            # (B, 1, S, D) as a stride-0 view: a size-1 batch would send SDPA to its math
            # fallback, which materialises the scores.
            kv = M.to(h.dtype).expand(h.shape[0], 1, *M.shape)
            return F.scaled_dot_product_attention(h.unsqueeze(1), kv, kv, scale=1.0).squeeze(1)
        weights = torch.softmax(h @ M.T, dim=-1)  # (B, T, S)
        return weights @ M  # (B, T, D)


def _gam_backends() -> list[str]:
    return ["reference", "fused"]


def _local_backends() -> list[str]:
    return ["local-only"]


@register_model(
    "gam-local-only",
    family="gam",
    config=GAMConfig,
    block=GAMBlock,
    defaults={"fusion": "local"},
    backends=_local_backends,
    description="GAM ablation (Table 3): causal conv only, no memory, no gate",
)
@register_model(
    "gam-global-only",
    family="gam",
    config=GAMConfig,
    block=GAMBlock,
    defaults={"fusion": "global"},
    backends=_gam_backends,
    description="GAM ablation (Table 3): memory only, no conv, no gate",
)
@register_model(
    "gam-sum-fusion",
    family="gam",
    config=GAMConfig,
    block=GAMBlock,
    defaults={"fusion": "sum"},
    backends=_gam_backends,
    description="GAM ablation (Table 3): conv + memory summed, no gate",
)
@register_model(
    "gam",
    family="gam",
    config=GAMConfig,
    block=GAMBlock,
    backends=_gam_backends,
    description="Gated Associative Memory (arXiv 2509.00605)",
)
class GAM(PositionalLM):
    """The GAM language model; keys match the official checkpoint layout."""

    def __init__(self, config: GAMConfig):
        super().__init__(config, GAMBlock)
