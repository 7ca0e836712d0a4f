"""The config fields every language model in the zoo shares.

Family configs subclass `LMConfig` and add their own fields. Configs are pydantic models
with `extra="forbid"`, so a misspelt field is an error, never silently ignored. Defaults are
the paper's (arXiv 2509.00605): vocab 10,000, max_seq_len (BLOCK_SIZE) 256, d 512, 6 layers,
dropout 0.1.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LMConfig(BaseModel):
    """Shared fields: vocab_size, max_seq_len, d_model, n_layers, dropout."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vocab_size: int = Field(10_000, ge=1)
    max_seq_len: int = Field(256, ge=1, description="longest sequence (learned positions)")
    d_model: int = Field(512, ge=1)
    n_layers: int = Field(6, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
