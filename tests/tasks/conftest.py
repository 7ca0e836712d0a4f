"""Fixtures for the perplexity task tests: the shared data folder, a private cache, a tiny LM."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from gam_bench.models import registry

REPO = Path(__file__).resolve().parents[2]
TINY = "test-tiny-lm"


def shared_data_dir() -> Path | None:
    """$GAM_BENCH_DATA_DIR if set, else ../shared/data next to the repository."""
    env = os.environ.get("GAM_BENCH_DATA_DIR")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    return path if (path / "wikitext-2").is_dir() else None


@pytest.fixture
def data_dir(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The real WikiText-2 / TinyStories folder; the test is skipped when it is absent."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("shared data not found: set GAM_BENCH_DATA_DIR or provide ../shared/data next to the repo")
    monkeypatch.delenv("GAM_BENCH_DATA_DIR", raising=False)  # tests pass the folder explicitly
    return path


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets an empty tokenizer cache of its own."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("GAM_BENCH_CACHE", str(folder))
    return folder


class TinyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vocab_size: int = 100
    max_seq_len: int = 32
    d_model: int = 16
    n_layers: int = 1
    dropout: float = 0.0


class TinyLM(nn.Module):
    """Causal: each position sees its own token and the previous one (a learned 2-gram mixer)."""

    def __init__(self, config: TinyConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.prev = nn.Linear(config.d_model, config.d_model, bias=False)
        self.mlp = nn.Sequential(nn.GELU(), nn.Dropout(config.dropout), nn.Linear(config.d_model, config.d_model))
        self.head = nn.Linear(config.d_model, config.vocab_size)

    @property
    def backend(self) -> str:
        return "test"

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.embed(idx)  # (B, T, D)
        shifted = torch.nn.functional.pad(x, (0, 0, 1, 0))[:, :-1]  # (B, T, D): token t-1 at t
        x = x + self.prev(shifted)
        return self.head(x + self.mlp(x))  # (B, T, V)


@pytest.fixture
def tiny_model(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register a tiny LM for this test only (the registry is restored afterwards)."""
    monkeypatch.setattr(registry, "MODELS", registry.MODELS.copy())
    registry.register_model(TINY, family="test", config=TinyConfig)(TinyLM)
    return TINY
