"""The pre-norm residual LM shell of mamba_ssm's MambaLMHeadModel, for blocks given as a list:
embedding -> layers (each x + mixer(norm(x))) -> final RMSNorm -> head tied to the embedding.
No positional embedding, so no length cap. Keys as mamba_ssm's: backbone.embedding,
backbone.layers.{i}, backbone.norm_f, lm_head (the same tensor as the embedding).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gam_bench.models.config import LMConfig
from gam_bench.models.decode import DecodeState, LMState, check_one_token


class NormBlock(nn.Module):
    """mamba_ssm's Block: x + mixer(RMSNorm(x)), keys mixer.* and norm.*. (B, L, D) -> (B, L, D).
    `mixer` maps (B, L, D) -> (B, L, D) and prefills and decodes with a fixed-size state."""

    decode_state_grows = False  # the mixers' conv windows and SSM states

    def __init__(self, d_model: int, mixer: nn.Module, norm_eps: float = 1e-5):
        super().__init__()
        self.mixer = mixer
        self.norm = nn.RMSNorm(d_model, eps=norm_eps)

    @property
    def backend(self) -> str:
        return self.mixer.backend

    @property
    def decode_backend(self) -> str:
        return self.mixer.decode_backend

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mixer(self.norm(x))  # (B, L, D)

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, DecodeState]:
        out, state = self.mixer.prefill(self.norm(x))
        return x + out, state  # (B, L, D)

    def decode(self, x: torch.Tensor, state: DecodeState) -> tuple[torch.Tensor, DecodeState]:
        out, state = self.mixer.decode(self.norm(x), state)
        return x + out, state  # (B, 1, D)


class _Backbone(nn.Module):
    def __init__(self, config: LMConfig, layers: Sequence[nn.Module], norm_eps: float):
        super().__init__()
        self.embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.layers = nn.ModuleList(layers)
        self.norm_f = nn.RMSNorm(config.d_model, eps=norm_eps)


class ResidualShell(nn.Module):
    """forward / prefill / decode / backends of an LM with `backbone.embedding`,
    `backbone.layers`, `backbone.norm_f` and `lm_head`; the subclass builds those."""

    @property
    def backend(self) -> str:
        return self.backbone.layers[0].backend

    @property
    def decode_backend(self) -> str:
        layer = self.backbone.layers[0]
        return str(getattr(layer, "decode_backend", layer.backend))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.backbone.embedding(idx)  # (B, T, D)
        for layer in self.backbone.layers:
            x = layer(x)  # (B, T, D)
        return self.lm_head(self.backbone.norm_f(x))  # (B, T, V)

    def prefill(self, idx: torch.Tensor, last_only: bool = False) -> tuple[torch.Tensor, LMState]:
        """Logits of idx (B, T) (the last position's only with last_only) and the state after it."""
        x = self.backbone.embedding(idx)  # (B, T, D)
        states = []
        for layer in self.backbone.layers:
            x, s = layer.prefill(x)  # (B, T, D)
            states.append(s)
        if last_only:
            x = x[:, -1:]  # (B, 1, D)
        return self.lm_head(self.backbone.norm_f(x)), LMState(position=idx.shape[1], layers=states)

    def decode(self, idx: torch.Tensor, state: LMState) -> tuple[torch.Tensor, LMState]:
        """Logits (B, 1, V) of one more token idx (B, 1)."""
        check_one_token(idx)
        x = self.backbone.embedding(idx)  # (B, 1, D)
        for i, layer in enumerate(self.backbone.layers):
            x, state.layers[i] = layer.decode(x, state.layers[i])  # (B, 1, D)
        state.position += 1
        return self.lm_head(self.backbone.norm_f(x)), state


class ResidualLM(ResidualShell):
    """Causal LM: forward(idx (B, T)) -> logits (B, T, V). `layers`: blocks with forward,
    prefill, decode and a `backend`; embedding ~ N(0, 0.02) as mamba_ssm initialises it."""

    def __init__(self, config: LMConfig, layers: Sequence[nn.Module], norm_eps: float = 1e-5):
        super().__init__()
        self.config = config
        self.backbone = _Backbone(config, layers, norm_eps)
        nn.init.normal_(self.backbone.embedding.weight, std=0.02)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.lm_head.weight = self.backbone.embedding.weight  # tied
