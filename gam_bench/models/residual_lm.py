"""The pre-norm residual LM shell of mamba_ssm's MambaLMHeadModel and flash-linear-attention's
*ForCausalLM models: embedding -> layers (each x + mixer(norm(x)), ...) -> final RMSNorm ->
head tied to the embedding. No positional embedding, so no length cap.

Key names differ only in the trunk: mamba_ssm's `backbone.{embedding, layers, norm_f}`, fla's
`model.{embeddings, layers, norm}`; `lm_head` in both. `TRUNK_NAMES` picks one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from gam_bench.models.config import LMConfig
from gam_bench.models.decode import LMState, check_one_token

# style -> (trunk, embedding, final norm) attribute names
TRUNK_NAMES = {"mamba_ssm": ("backbone", "embedding", "norm_f"), "fla": ("model", "embeddings", "norm")}


class _Trunk(nn.Module):
    def __init__(self, names: tuple[str, str], embedding: nn.Module, layers: nn.ModuleList, norm: nn.Module):
        super().__init__()
        self.names = names
        setattr(self, names[0], embedding)
        self.layers = layers
        setattr(self, names[1], norm)

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        return getattr(self, self.names[0])(idx)

    def final_norm(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, self.names[1])(x)


class ResidualLM(nn.Module):
    """Causal LM: forward(idx (B, T)) -> logits (B, T, V). `layers`: the blocks, each with
    forward/prefill/decode and a `backend`; `norm_eps`: the final RMSNorm's."""

    def __init__(self, config: LMConfig, layers: Sequence[nn.Module], style: str, norm_eps: float):
        super().__init__()
        self.config = config
        trunk, embedding, norm = TRUNK_NAMES[style]
        body = _Trunk(
            (embedding, norm),
            nn.Embedding(config.vocab_size, config.d_model),
            nn.ModuleList(layers),
            nn.RMSNorm(config.d_model, eps=norm_eps),
        )
        self._trunk_name = trunk
        setattr(self, trunk, body)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        nn.init.normal_(getattr(body, embedding).weight, std=0.02)  # as mamba_ssm and fla
        self.lm_head.weight = getattr(body, embedding).weight  # tied

    @property
    def trunk(self) -> _Trunk:
        return getattr(self, self._trunk_name)

    @property
    def backend(self) -> str:
        return self.trunk.layers[0].backend

    @property
    def decode_backend(self) -> str:
        layer = self.trunk.layers[0]
        return str(getattr(layer, "decode_backend", layer.backend))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.trunk.embed(idx)  # (B, T, D)
        for layer in self.trunk.layers:
            x = layer(x)  # (B, T, D)
        return self.lm_head(self.trunk.final_norm(x))  # (B, T, V)

    def prefill(self, idx: torch.Tensor, last_only: bool = False) -> tuple[torch.Tensor, LMState]:
        """Logits of idx (B, T) (the last position's only with last_only) and the state after it."""
        x = self.trunk.embed(idx)  # (B, T, D)
        states = []
        for layer in self.trunk.layers:
            x, s = layer.prefill(x)  # (B, T, D)
            states.append(s)
        if last_only:
            x = x[:, -1:]  # (B, 1, D)
        return self.lm_head(self.trunk.final_norm(x)), LMState(position=idx.shape[1], layers=states)

    def decode(self, idx: torch.Tensor, state: LMState) -> tuple[torch.Tensor, LMState]:
        """Logits (B, 1, V) of one more token idx (B, 1)."""
        check_one_token(idx)
        x = self.trunk.embed(idx)  # (B, 1, D)
        for i, layer in enumerate(self.trunk.layers):
            x, state.layers[i] = layer.decode(x, state.layers[i])  # (B, 1, D)
        state.position += 1
        return self.lm_head(self.trunk.final_norm(x)), state

