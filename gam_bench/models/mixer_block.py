"""The pre-norm residual block the O(N) field's families share around their token mixer.

    x + attn(ln_1(x)), then x + ffn(ln_2(x)), ffn = Linear(d, m d) -> GELU -> Linear(m d, d) -> Dropout

the layout and FFN of the paper's Transformer and GAM blocks (keys ln_1, attn, ln_2, ffn.0,
ffn.2), so a family differs from them only in its mixer. The mixer (`attn`) keeps the
reference implementation's own key names. `prefill`/`decode` pass the mixer's state through;
`backend`, `decode_backend` and `backend_reason` are the mixer's.
"""

from __future__ import annotations

import torch
from torch import nn

from gam_bench.models.decode import DecodeState


class MixerBlock(nn.Module):
    """(B, T, D) -> (B, T, D) around `mixer`, which maps (B, T, D) -> (B, T, D) and decodes."""

    def __init__(self, d_model: int, mixer: nn.Module, ffn_mult: int, dropout: float):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.attn = mixer
        self.ln_2 = nn.LayerNorm(d_model)
        hidden = ffn_mult * d_model
        self.ffn = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model), nn.Dropout(dropout))

    @property
    def backend(self) -> str:
        return self.attn.backend

    @property
    def decode_backend(self) -> str:
        return self.attn.decode_backend

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))  # (B, T, D)
        return x + self.ffn(self.ln_2(x))  # (B, T, D)

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, DecodeState]:
        a, state = self.attn.prefill(self.ln_1(x))  # (B, T, D)
        x = x + a
        return x + self.ffn(self.ln_2(x)), state  # (B, T, D)

    def decode(self, x: torch.Tensor, state: DecodeState) -> tuple[torch.Tensor, DecodeState]:
        a, state = self.attn.decode(self.ln_1(x), state)  # (B, 1, D)
        x = x + a
        return x + self.ffn(self.ln_2(x)), state  # (B, 1, D)
