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
        B, T = idx.shape
        if T > self.config.max_seq_len:
            raise ValueError(
                f"sequence length {T} exceeds max_seq_len={self.config.max_seq_len}; "
                "build the model with a larger max_seq_len"
            )
        pos = torch.arange(T, device=idx.device)  # (T,)
        x = self.dropout(self.token_embedding(idx) + self.pos_embedding(pos))  # (B, T, D)
        for block in self.blocks:
            x = block(x)  # (B, T, D)
        return self.head(self.ln_f(x))  # (B, T, V)
