"""Fixtures of the model-zoo tests: tiny configs that keep every model fast on CPU."""

from __future__ import annotations

import pytest
import torch

from gam_bench.models import get_spec

# Shared fields of a tiny model, then the family's own.
TINY = {"vocab_size": 97, "max_seq_len": 64, "d_model": 32, "n_layers": 2, "dropout": 0.0}
FAMILY_TINY = {
    "gam": {"num_memory_slots": 16},
    "transformer": {"n_heads": 4},
    "mamba": {"d_state": 4},
    "mamba2": {"d_state": 4, "headdim": 16},  # d_inner 112: 7 heads
    "gated-deltanet": {"num_heads": 2, "head_dim": 8},
    "hybrid": {"num_heads": 2, "head_dim": 8, "attn_heads": 4, "attn_every": 2},  # layers: deltanet, attention
}


def tiny_overrides(name: str, **extra) -> dict:
    """Overrides that make model `name` tiny; only fields its config has (plugins too)."""
    spec = get_spec(name)
    wanted = {**TINY, **FAMILY_TINY.get(spec.family, {}), **extra}
    return {k: v for k, v in wanted.items() if k in spec.config_cls.model_fields}


@pytest.fixture
def tiny():
    """tiny(name, **extra) -> overrides for a tiny version of `name`."""
    return tiny_overrides


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
