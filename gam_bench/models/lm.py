"""The language-model shell shared by the paper's three models (GAM, Transformer, Mamba).

token embedding + learned positional embedding -> dropout -> blocks -> final LayerNorm ->
head tied to the token embedding. Attribute names follow the paper's official script, so
its checkpoints load as they are: `token_embedding`, `pos_embedding`, `blocks.{i}`, `ln_f`,
`head` (`head.weight` and `token_embedding.weight` are the same tensor, and both keys are
in the state dict, as in the official script).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from gam_bench.models.config import LMConfig
from gam_bench.models.decode import LMState, check_one_token


class PositionalLM(nn.Module):
    """Causal LM: forward(idx (B, T)) -> logits (B, T, vocab); `make_block(config)` -> a block."""

    def __init__(self, config: LMConfig, make_block: Callable[[LMConfig], nn.Module]):
        super().__init__()
        self.config = config
        D = config.d_model
        # Creation order as in the official script, so a seed gives the same initial weights.
        self.token_embedding = nn.Embedding(config.vocab_size, D)
        self.pos_embedding = nn.Embedding(config.max_seq_len, D)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(make_block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(D)
        self.head = nn.Linear(D, config.vocab_size, bias=False)
        self.token_embedding.weight = self.head.weight  # tied, initialised as the head

    @property
    def backend(self) -> str:
        """The implementation the blocks run (all blocks share one config)."""
        return self.blocks[0].backend

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self._embed(idx, 0)  # (B, T, D)
        for block in self.blocks:
            x = block(x)  # (B, T, D)
        return self.head(self.ln_f(x))  # (B, T, V)

    def prefill(self, idx: torch.Tensor, last_only: bool = False) -> tuple[torch.Tensor, LMState]:
        """Logits of idx (B, T) and the decode state after it. last_only: logits of the last
        position only, (B, 1, V), as generation needs (the (B, T, V) logits of a long context
        can dwarf the state)."""
        x = self._embed(idx, 0)  # (B, T, D)
        states = []
        for block in self.blocks:
            x, s = block.prefill(x)  # (B, T, D)
            states.append(s)
        if last_only:
            x = x[:, -1:]  # (B, 1, D)
        return self.head(self.ln_f(x)), LMState(position=idx.shape[1], layers=states)

    def decode(self, idx: torch.Tensor, state: LMState) -> tuple[torch.Tensor, LMState]:
        """Logits (B, 1, V) of one more token idx (B, 1) at position `state.position`."""
        check_one_token(idx)
        x = self._embed(idx, state.position)  # (B, 1, D)
        for i, block in enumerate(self.blocks):
            x, state.layers[i] = block.decode(x, state.layers[i])  # (B, 1, D)
        state.position += 1
        return self.head(self.ln_f(x)), state

    def _embed(self, idx: torch.Tensor, offset: int) -> torch.Tensor:
        """Token + learned position embeddings of idx (B, T) at positions offset..offset+T-1."""
        end = offset + idx.shape[1]
        if end > self.config.max_seq_len:
            raise ValueError(
                f"sequence length {end} exceeds max_seq_len={self.config.max_seq_len}; "
                "build the model with a larger max_seq_len"
            )
        pos = torch.arange(offset, end, device=idx.device)  # (T,)
        return self.dropout(self.token_embedding(idx) + self.pos_embedding(pos))  # (B, T, D)
