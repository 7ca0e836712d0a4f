"""Validated settings of a perplexity suite (the `perplexity:` section of a suite file).

No torch here: suite validation must stay light. The defaults are the paper's protocol
(arXiv 2509.00605, official `benchmark.py`): WikiText-2 raw, BPE with a 10,000-token
vocabulary, AdamW lr 3e-4 betas (0.9, 0.95) weight decay 0.1, 100 linear warmup steps then
cosine decay to zero, gradient clipping 1.0, dropout 0.1, 5 epochs.

The block size is the cell's `seq_len` and the batch size the cell's `batch_size`: they
are suite axes, not settings here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gam_bench.text.data import DATASETS

Dataset = Literal[tuple(DATASETS)]  # type: ignore[valid-type]


class Budget(BaseModel):
    """How long to train: exactly one of whole/fractional epochs, tokens, or wall-clock seconds.

    tokens counts target tokens trained on (batch x block length per step); seconds counts
    training time only (evaluation excluded), so equal-time comparisons stay fair.
    """

    model_config = ConfigDict(extra="forbid")

    epochs: float | None = Field(default=None, gt=0)
    tokens: int | None = Field(default=None, gt=0)
    seconds: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _exactly_one(self) -> Budget:
        given = [name for name in ("epochs", "tokens", "seconds") if getattr(self, name) is not None]
        if not given:
            self.epochs = 5.0
        elif len(given) > 1:
            raise ValueError(f"give exactly one of epochs, tokens, seconds (got {', '.join(given)})")
        return self

    @property
    def kind(self) -> str:
        return next(name for name in ("epochs", "tokens", "seconds") if getattr(self, name) is not None)


class PerplexitySettings(BaseModel):
    """Dataset, tokenizer, budget, optimiser and evaluation settings of a perplexity cell."""

    model_config = ConfigDict(extra="forbid")

    dataset: Dataset = "wikitext-2-raw"
    # Local data folder (relative paths are taken from the working directory). The
    # environment variable GAM_BENCH_DATA_DIR, when set, is searched first.
    data_dir: str | None = None
    tokenizer: Literal["bpe", "word"] = "bpe"
    # BPE: target vocabulary (paper: 10000). word: None keeps every training word.
    vocab_size: int | None = Field(default=None, gt=4)
    budget: Budget = Field(default_factory=Budget)
    # Evaluate every this many optimiser steps; None: after each epoch. The end of the
    # budget is always evaluated.
    eval_interval: int | None = Field(default=None, gt=0)
    lr: float = Field(default=3e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = Field(default=0.1, ge=0)
    warmup_steps: int = Field(default=100, ge=0)
    grad_clip: float | None = Field(default=1.0, gt=0)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    # Keep only the first rows of a split (hub rows: WikiText lines, TinyStories stories),
    # as the paper's benchmark.py does (MAX_TRAIN_ROWS 50000, MAX_VAL_ROWS 5000).
    max_train_rows: int | None = Field(default=None, gt=0)
    max_val_rows: int | None = Field(default=None, gt=0)
    # Evaluate on the first this many validation tokens only (a CPU shortcut); None: all.
    max_eval_tokens: int | None = Field(default=None, gt=1)
    # Equal-width buckets of context position for the per-position validation loss.
    position_buckets: int = Field(default=8, gt=0)

    @property
    def effective_vocab_size(self) -> int | None:
        """The vocabulary the tokenizer is trained for: 10000 for BPE unless given."""
        if self.vocab_size is None and self.tokenizer == "bpe":
            return 10000
        return self.vocab_size
