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
Decoding (gam_bench.models.decode): the only state is the conv window, the last k-1
normalised inputs of each block, (B, k-1, D) (zeros before the first token); the memory read
is per token and needs no state. So the state is constant in the context length:
B * (k-1) * D * element size per layer, and none at all for the "global" ablation.

The paper's Table 3 ablations are the `fusion` field: "global" (no gate, no conv), "local"
(no gate, no memory) and "sum" (no gate, plain sum); their state dicts lack those modules.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from gam_bench.models.config import LMConfig
from gam_bench.models.decode import DecodeState, check_one_token
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


@dataclasses.dataclass
class GAMState(DecodeState):
    """The conv window: the last k-1 normalised inputs, (B, k-1, D); None without a conv."""

    window: torch.Tensor | None


class GAMBlock(nn.Module):
    """One GAM block, (B, T, D) -> (B, T, D). State-dict keys as in the official script."""

    decode_state_grows = False  # the conv window: (B, k-1, D) at every step

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

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, GAMState]:
        """forward(x) for x (B, T, D), and the conv window after it."""
        h = self.ln1(x)  # (B, T, D)
        x = x + self._context(h)
        return x + self.ffn(self.ln2(x)), GAMState(self._last_window(h))  # (B, T, D)

    def decode(self, x: torch.Tensor, state: GAMState) -> tuple[torch.Tensor, GAMState]:
        """One position x (B, 1, D): the conv sees the window and x; the memory read, x alone."""
        check_one_token(x)
        h = self.ln1(x)  # (B, 1, D)
        if state.window is None:
            x = x + self._context(h)
            return x + self.ffn(self.ln2(x)), state
        seen = torch.cat([state.window, h], dim=1)  # (B, k, D)
        x = x + self._context(h, self._conv_valid(seen))
        return x + self.ffn(self.ln2(x)), GAMState(seen[:, 1:].clone())  # (B, 1, D); window (B, k-1, D)

    def _last_window(self, h: torch.Tensor) -> torch.Tensor | None:
        """The last k-1 rows of h (B, T, D), zero-padded in front when T < k-1; a copy."""
        if self.fusion == "global":
            return None
        B, T, D = h.shape
        n = min(T, self.causal_conv.kernel_size[0] - 1)
        window = h.new_zeros(B, self.causal_conv.kernel_size[0] - 1, D)  # (B, k-1, D)
        window[:, window.shape[1] - n :] = h[:, T - n :]
        return window

    def _conv_valid(self, seen: torch.Tensor) -> torch.Tensor:
        """The conv's output at the last of k positions seen (B, k, D) -> (B, 1, D)."""
        conv = self.causal_conv
        out = F.conv1d(seen.transpose(1, 2), conv.weight, conv.bias, groups=conv.groups)  # (B, D, 1)
        return out.transpose(1, 2)

    def _context(self, h: torch.Tensor, local: torch.Tensor | None = None) -> torch.Tensor:
        """Fused local and global context of the normalised input h (B, T, D). `local`: the
        conv's output when already known (decode), else computed from h."""
        if self.fusion == "global":
            return self._global(h)
        local = self._local(h) if local is None else local  # (B, T, D)
        if self.fusion == "local":
            return local
        if self.fusion == "sum":
            return local + self._global(h)
        g_local, g_global = self.gate(h).chunk(2, dim=-1)  # (B, T, D) each
        return torch.sigmoid(g_local) * local + torch.sigmoid(g_global) * self._global(h)

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
