"""Validated settings of a recall (MQAR) suite: the `recall:` section of a suite file.

No torch here: suite validation must stay light. The defaults follow Zoology's MQAR sweep
(arXiv 2312.04927, Figure 2): vocabulary 8,192, power_a 0.01, 100,000 training and 3,000
test examples, learning rates logspace(-4, -2, 4), the number of pairs tied to the length
(64: 4, 128: 8, 256: 16, 512: 64), position embeddings initialised N(0, 0.02) as in
Zoology's models. `seq_len`, `d_model` and the model are suite axes, not settings here;
`num_kv_pairs` and `lr` may be lists, which the suite sweeps (`points`).

`TrainingSettings` holds what the recall trainer needs (shared with the recall_distance task);
`RecallSettings` adds MQAR's own fields.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gam_bench.errors import UserError

PAPER_KV_PAIRS = {64: 4, 128: 8, 256: 16, 512: 64}
PAPER_LRS = [1.0e-4, 4.6e-4, 2.2e-3, 1.0e-2]


class RecallBudget(BaseModel):
    """How long to train: exactly one of optimiser steps or training seconds (evaluation excluded)."""

    model_config = ConfigDict(extra="forbid")

    steps: int | None = Field(default=None, gt=0)
    seconds: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _exactly_one(self) -> RecallBudget:
        given = [name for name in ("steps", "seconds") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of steps, seconds (got {', '.join(given) or 'neither'})")
        return self

    @property
    def kind(self) -> str:
        return "steps" if self.steps is not None else "seconds"


class TrainingSettings(BaseModel):
    """What a recall-style task trains with (recall's `trainer.fit`, `build_model`): data sizes,
    budget, optimiser, dropout, position init and seed; each task adds its data's own fields."""

    model_config = ConfigDict(extra="forbid")

    vocab_size: int = Field(default=8192, ge=2)
    train_examples: int = Field(default=100_000, gt=0)
    test_examples: int = Field(default=3_000, gt=0)
    budget: RecallBudget = Field(default_factory=lambda: RecallBudget(steps=2000))
    # One learning rate or a list (swept; the report keeps the best per cell, as the paper).
    lr: float | list[float] = Field(default_factory=lambda: list(PAPER_LRS))
    batch_size: int = Field(default=64, gt=0)
    eval_batch_size: int = Field(default=64, gt=0)
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = Field(default=0.1, ge=0)
    warmup_steps: int = Field(default=0, ge=0)
    grad_clip: float | None = Field(default=1.0, gt=0)
    dropout: float = Field(default=0.0, ge=0, lt=1)
    # Re-initialise learned position embeddings N(0, pos_init_std) (None: the model's own init).
    # The paper's models keep nn.Embedding's N(0, 1), which swamps the token embedding (tied to
    # the head, std ~ 1/sqrt(3 d_model)); Zoology's models use 0.02 (initializer_range).
    pos_init_std: float | None = Field(default=0.02, gt=0)
    seed: int = 0

    @field_validator("lr")
    @classmethod
    def _positive_lrs(cls, value: float | list[float]) -> float | list[float]:
        values = value if isinstance(value, list) else [value]
        if not values or any(v <= 0 for v in values):
            raise ValueError(f"learning rates must be a non-empty list of numbers > 0 (got {value})")
        return value

    @property
    def lrs(self) -> list[float]:
        return list(self.lr) if isinstance(self.lr, list) else [self.lr]

    @property
    def budget_text(self) -> str:
        """The budget as rows record it: "steps=N" or "seconds=S"."""
        return f"{self.budget.kind}={getattr(self.budget, self.budget.kind)}"


class RecallSettings(TrainingSettings):
    """Data, budget and optimiser settings of a recall cell."""

    # One count, a list (swept), or {seq_len: count} (the paper's coupling of pairs to length).
    num_kv_pairs: int | list[int] | dict[int, int] = Field(default_factory=lambda: dict(PAPER_KV_PAIRS))
    power_a: float = Field(default=0.01, gt=0)

    @field_validator("num_kv_pairs")
    @classmethod
    def _positive_pairs(cls, value: int | list[int] | dict[int, int]) -> int | list[int] | dict[int, int]:
        values = list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else [value]
        if not values or any(v < 1 for v in values):
            raise ValueError(f"num_kv_pairs must be >= 1 (got {value})")
        return value

    def kv_pairs_for(self, seq_len: int) -> list[int]:
        """The pair counts swept at `seq_len`; a {seq_len: count} map must name every length."""
        if isinstance(self.num_kv_pairs, dict):
            if seq_len not in self.num_kv_pairs:
                lengths = ", ".join(map(str, sorted(self.num_kv_pairs)))
                raise UserError(f"recall.num_kv_pairs has no entry for seq_len={seq_len} (it maps {lengths})")
            return [self.num_kv_pairs[seq_len]]
        return list(self.num_kv_pairs) if isinstance(self.num_kv_pairs, list) else [self.num_kv_pairs]

    def points(self, seq_len: int) -> list[RecallSettings]:
        """One settings object per (num_kv_pairs, lr) swept at `seq_len`, each with scalar values."""
        return [
            self.model_copy(update={"num_kv_pairs": k, "lr": lr}) for k in self.kv_pairs_for(seq_len) for lr in self.lrs
        ]

    def scalar(self) -> tuple[int, float]:
        """(num_kv_pairs, lr) of a single point; a UserError if either is still a sweep."""
        if not isinstance(self.num_kv_pairs, int) or isinstance(self.lr, list):
            raise UserError(
                f"recall: one cell needs one num_kv_pairs and one lr (got num_kv_pairs={self.num_kv_pairs}, "
                f"lr={self.lr}); expand the sweep with RecallSettings.points(seq_len)"
            )
        return self.num_kv_pairs, float(self.lr)
