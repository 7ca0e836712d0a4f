"""Test-only decoding models for the decode-cell runner tests (loaded as `plugins: [decode_models]`,
like faulty_models.py, from this folder so spawned workers import it too).

    test-decode       a tiny causal LM with prefill/decode: out_t = head(e_t + e_{t-1}), its
                      state the previous position's embedding (B, 1, D)
    test-decode-oom   raises torch.OutOfMemoryError in prefill when seq_len > `max_ok_len`
    test-decode-hang  sleeps an hour in prefill when seq_len > `max_ok_len`
"""

from __future__ import annotations

import dataclasses
import time

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from gam_bench.models.decode import DecodeState, LMState, check_one_token
from gam_bench.models.registry import register_model


class PairConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vocab_size: int = 31
    max_seq_len: int = 64
    d_model: int = 8
    n_layers: int = 1
    dropout: float = 0.0
    max_ok_len: int = 1_000_000


@dataclasses.dataclass
class PairState(DecodeState):
    last: torch.Tensor  # (B, 1, D) embedding of the newest position


class PairLM(nn.Module):
    fault = "test-decode"

    def __init__(self, config: PairConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size)

    @property
    def backend(self) -> str:
        return "test"

    def forward(self, idx: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, V)
        if idx.shape[1] > self.config.max_seq_len:
            raise ValueError(f"sequence of {idx.shape[1]} > max_seq_len {self.config.max_seq_len}")
        e = self.embed(idx)  # (B, T, D)
        previous = nn.functional.pad(e, (0, 0, 1, 0))[:, :-1]  # (B, T, D): e_{t-1}, zero at t = 0
        return self.head(e + previous)

    def prefill(self, idx: torch.Tensor, last_only: bool = False) -> tuple[torch.Tensor, LMState]:
        T = idx.shape[1]
        if T > self.config.max_ok_len:
            if self.fault == "test-decode-oom":
                raise torch.OutOfMemoryError(f"simulated: prefill of {T} > {self.config.max_ok_len}")
            if self.fault == "test-decode-hang":
                time.sleep(3600)
        out = self(idx)  # (B, T, V)
        state = LMState(position=T, layers=[PairState(self.embed(idx[:, -1:]))])
        return (out[:, -1:] if last_only else out), state

    def decode(self, idx: torch.Tensor, state: LMState) -> tuple[torch.Tensor, LMState]:
        check_one_token(idx)
        if state.position >= self.config.max_seq_len:
            raise ValueError(f"decode at position {state.position} >= max_seq_len {self.config.max_seq_len}")
        e = self.embed(idx)  # (B, 1, D)
        out = self.head(e + state.layers[0].last)  # (B, 1, V)
        return out, LMState(position=state.position + 1, layers=[PairState(e)])


for _name in ("test-decode", "test-decode-oom", "test-decode-hang"):
    _lm = type(f"LM_{_name}", (PairLM,), {"fault": _name})
    register_model(_name, family="test", config=PairConfig, description=f"test-only: {_name}")(_lm)
