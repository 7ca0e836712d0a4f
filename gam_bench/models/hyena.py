"""Hyena (arXiv 2302.10866): gated implicit long convolutions, O(T log T) by FFT.

The operator, order 2, as safari's `HyenaOperator` (names kept: in_proj, short_filter,
filter_fn.{pos_emb, implicit_filter, modulation, bias}, out_proj):

    x0, x1, v = short_filter(in_proj(x))    depthwise causal conv (kernel 3) over 3 D channels
    h         = filter_fn.filter(T)         (D, T): an MLP with sine activations of a positional
                                            embedding [t, cos, sin] (filter_order 64), times an
                                            exponential decay per channel
    y         = x0 * (long_conv(x1 * v, h) + bias * (x1 * v))
    out       = out_proj(y)

in the shared pre-norm block with the paper's FFN (gam_bench.models.mixer_block; the
operator is its `attn`). `impl`: "fft" (ops.long_conv.fft_conv, the default) or "direct"
(the O(T^2) reference twin, a depthwise Conv1d). The filter is defined up to max_seq_len
(its positional embedding, like safari's, is a parameter of that length).

At the paper's configuration (d 512, 6 layers) the LM has 24.46M parameters against GAM's
22.6M (+8%): safari's defaults (order 2, filter_order 64, short filter 3), no knob moved.

Decoding (gam_bench.models.decode): the state is the short conv's window, the last 2
inputs of its 3 D channels (B, 3D, 2), and every input of the long convolution so far,
(B, D, t): the filter spans the whole context, so the state grows by one position per token
(as a KV cache) and a step costs O(t D). The filter itself, a function of the weights, is
computed once per prefill for max_seq_len positions and not counted as state. Bytes:
B * D * (3 * 2 + t) * element size per layer.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from gam_bench.models.config import LMConfig
from gam_bench.models.decode import DecodeState, check_one_token
from gam_bench.models.lm import PositionalLM
from gam_bench.models.mixer_block import MixerBlock
from gam_bench.models.ops.long_conv import direct_conv, fft_conv
from gam_bench.models.registry import register_model


class HyenaConfig(LMConfig):
    """Hyena fields on top of the shared ones; defaults are safari's HyenaOperator's."""

    filter_order: int = Field(64, ge=1, description="width of the implicit filter's MLP")
    short_filter_order: int = Field(3, ge=1)
    emb_dim: int = Field(3, ge=3, description="positional features of the filter: t and (emb_dim-1)/2 bands")
    ffn_mult: int = Field(4, ge=1, description="FFN hidden width / d_model (the paper's 4)")
    impl: Literal["fft", "direct"] = "fft"


@dataclasses.dataclass
class HyenaState(DecodeState):
    """The short conv's window (B, 3D, short-1) and the long conv's inputs so far (B, D, t)."""

    window: torch.Tensor
    history: torch.Tensor


class PositionalEmbedding(nn.Module):
    """safari's: z = [t, Re exp(-i f w), Im exp(-i f w)] over max_seq_len positions (z a parameter, t a buffer)."""

    def __init__(self, emb_dim: int, seq_len: int):
        super().__init__()
        bands = (emb_dim - 1) // 2
        t = torch.linspace(0, 1, seq_len)[None, :, None]  # (1, L, 1)
        w = 2 * math.pi * torch.linspace(0, seq_len - 1, seq_len)[None, :, None] / seq_len  # (1, L, 1)
        f = torch.linspace(1e-4, bands - 1, bands)[None, None]  # (1, 1, bands)
        z = torch.exp(-1j * f * w)  # (1, L, bands)
        self.z = nn.Parameter(torch.cat([t, z.real, z.imag], dim=-1))  # (1, L, emb_dim)
        self.register_buffer("t", t)

    def forward(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.z[:, :length], self.t[:, :length]  # (1, T, emb_dim), (1, T, 1)


class Sin(nn.Module):
    """sin(freq * x) with a learned frequency per feature."""

    def __init__(self, dim: int, w: float = 1.0):
        super().__init__()
        self.freq = nn.Parameter(w * torch.ones(1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.freq * x)


class ExponentialModulation(nn.Module):
    """h * exp(-t |delta_d|), decay rates from log(target)/slow_pct to log(target)/fast_pct."""

    def __init__(self, d_model: int, fast_decay_pct=0.3, slow_decay_pct=1.5, target=1e-2):
        super().__init__()
        max_decay, min_decay = math.log(target) / fast_decay_pct, math.log(target) / slow_decay_pct
        self.register_buffer("deltas", torch.linspace(min_decay, max_decay, d_model)[None, None])  # (1, 1, D)

    def forward(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return h * torch.exp(-t * self.deltas.abs())  # (1, T, D)


class HyenaFilter(nn.Module):
    """The implicit long filter: (D, T) for any T <= max_seq_len, and the skip term's bias (D,)."""

    def __init__(self, d_model: int, filter_order: int, emb_dim: int, seq_len: int):
        super().__init__()
        self.pos_emb = PositionalEmbedding(emb_dim, seq_len)
        self.implicit_filter = nn.Sequential(
            nn.Linear(emb_dim, filter_order),
            Sin(filter_order),
            nn.Linear(filter_order, filter_order),
            Sin(filter_order),
            nn.Linear(filter_order, filter_order),
            Sin(filter_order),
            nn.Linear(filter_order, d_model, bias=False),
        )
        self.modulation = ExponentialModulation(d_model)
        self.bias = nn.Parameter(torch.randn(d_model))

    def filter(self, length: int) -> torch.Tensor:
        z, t = self.pos_emb(length)  # (1, T, emb_dim), (1, T, 1)
        return self.modulation(t, self.implicit_filter(z))[0].T  # (D, T)


class HyenaOperator(nn.Module):
    """safari's HyenaOperator at order 2, (B, T, D) -> (B, T, D)."""

    def __init__(self, config: HyenaConfig):
        super().__init__()
        D, k = config.d_model, config.short_filter_order
        self.impl, self.max_seq_len = config.impl, config.max_seq_len
        self.in_proj = nn.Linear(D, 3 * D)
        self.out_proj = nn.Linear(D, D)
        self.short_filter = nn.Conv1d(3 * D, 3 * D, k, padding=k - 1, groups=3 * D)
        self.filter_fn = HyenaFilter(D, config.filter_order, config.emb_dim, config.max_seq_len)
        self._decode_filter: torch.Tensor | None = None  # the reversed filter, set by prefill

    @property
    def backend(self) -> str:
        return "fft-conv" if self.impl == "fft" else "direct-conv"

    decode_backend = "direct-step"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prefill(x, keep_state=False)[0]

    def prefill(self, x: torch.Tensor, keep_state: bool = True) -> tuple[torch.Tensor, HyenaState | None]:
        """forward(x) for x (B, T, D); with keep_state, the window and long-conv inputs after it."""
        T = x.shape[1]
        if T > self.max_seq_len:
            raise ValueError(f"sequence length {T} exceeds max_seq_len={self.max_seq_len} (Hyena's filter length)")
        u = self.in_proj(x).transpose(1, 2)  # (B, 3D, T)
        x0, x1, v = self.short_filter(u)[..., :T].chunk(3, dim=1)  # (B, D, T) each
        w = x1 * v  # (B, D, T): the long convolution's input
        conv = fft_conv if self.impl == "fft" else direct_conv
        y = x0 * (conv(w, self.filter_fn.filter(T)) + self.filter_fn.bias[:, None] * w)  # (B, D, T)
        out = self.out_proj(y.transpose(1, 2))  # (B, T, D)
        if not keep_state:
            return out, None
        self._cache_filter()
        return out, HyenaState(self._last_window(u), w.detach().clone())

    def decode(self, x: torch.Tensor, state: HyenaState) -> tuple[torch.Tensor, HyenaState]:
        """One position x (B, 1, D): short conv over the window, long conv over the whole history."""
        check_one_token(x)
        t = state.history.shape[-1]  # this token's position
        if t >= self.max_seq_len:
            raise ValueError(f"sequence length {t + 1} exceeds max_seq_len={self.max_seq_len} (Hyena's filter length)")
        u = self.in_proj(x).transpose(1, 2)  # (B, 3D, 1)
        seen = torch.cat([state.window, u], dim=-1)  # (B, 3D, k)
        conv = self.short_filter
        x0, x1, v = F.conv1d(seen, conv.weight, conv.bias, groups=conv.groups).chunk(3, dim=1)  # (B, D, 1) each
        history = torch.cat([state.history, x1 * v], dim=-1)  # (B, D, t + 1)
        h_rev = self._reversed_filter(t + 1).to(history.dtype)  # (D, t + 1): h_t .. h_0
        y = (history * h_rev).sum(-1, keepdim=True)  # (B, D, 1): sum_s h_{t-s} w_s
        y = x0 * (y + self.filter_fn.bias[:, None] * history[..., -1:])
        return self.out_proj(y.transpose(1, 2)), HyenaState(seen[..., 1:].clone(), history)

    def _reversed_filter(self, length: int) -> torch.Tensor:
        """h_{length-1}, ..., h_0 of the filter, (D, length), from the cached reversed filter."""
        if self._decode_filter is None or self._decode_filter.device != self.in_proj.weight.device:
            self._cache_filter()
        return self._decode_filter[:, self.max_seq_len - length :]

    def _cache_filter(self) -> None:
        """The whole filter, reversed (D, max_seq_len), for decode steps."""
        with torch.no_grad():
            self._decode_filter = self.filter_fn.filter(self.max_seq_len).flip(-1).contiguous()

    def _last_window(self, u: torch.Tensor) -> torch.Tensor:
        """The last short-1 inputs of u (B, 3D, T), zero-padded in front; a copy."""
        B, C, T = u.shape
        size = self.short_filter.kernel_size[0] - 1
        n = min(T, size)
        window = u.new_zeros(B, C, size)
        window[..., size - n :] = u[..., T - n :]
        return window.detach()


class HyenaBlock(MixerBlock):
    """Pre-norm block around the Hyena operator, (B, T, D) -> (B, T, D)."""

    decode_state_grows = True  # the long convolution's inputs, one more per token

    def __init__(self, config: HyenaConfig):
        super().__init__(config.d_model, HyenaOperator(config), config.ffn_mult, config.dropout)


def _backends() -> list[str]:
    return ["fft", "direct"]


@register_model(
    "hyena",
    family="hyena",
    config=HyenaConfig,
    block=HyenaBlock,
    backends=_backends,
    description="Hyena (arXiv 2302.10866): implicit long convolution by FFT, O(T log T)",
)
class Hyena(PositionalLM):
    """The Hyena language model in the paper's LM shell (learned positions, tied head)."""

    def __init__(self, config: HyenaConfig):
        super().__init__(config, HyenaBlock)

    @property
    def decode_backend(self) -> str:
        return self.blocks[0].decode_backend
