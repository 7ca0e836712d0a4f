"""Test-only models for the runner tests: one that works and ones that fail on purpose.

Loaded by suites through `plugins: [faulty_models]` (this folder is the suite files'
folder, so the spawned workers can import it too).

    test-tiny      a tiny working block / LM; `sleep_s` makes every forward slower,
                   `alloc_mb` makes every forward hold that much extra memory
    test-pid, test-pid2  like test-tiny; `backend` reports the worker's pid
    test-raises    raises ValueError in forward (only at seq_len `fail_at` if set)
    test-hog       allocates 256 MiB chunks until the memory cap stops it (stops at 8 GiB)
    test-hang      sleeps for an hour in forward
    test-kill      SIGKILLs its own process in forward (only at seq_len `fail_at` if set)
    test-oom-long  raises torch.OutOfMemoryError when seq_len > `max_ok_len`
    test-lm-only   an LM without a block-level implementation
    test-nan       a working model whose training forwards return NaN from call `nan_after` + 1 on
                   (0: never); evaluation (eval mode) is not counted
"""

from __future__ import annotations

import os
import signal
import time

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from gam_bench.models.registry import register_model


class TinyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vocab_size: int = 31
    max_seq_len: int = 64
    d_model: int = 8
    n_layers: int = 1
    dropout: float = 0.0
    sleep_s: float = 0.0
    max_ok_len: int = 1_000_000
    alloc_mb: int = 0
    fail_at: int = 0  # test-raises / test-kill: fail only at this seq_len (0: always)
    nan_after: int = 0  # test-nan: training forwards after this many return NaN (0: never)


def _fault(name: str, config: TinyConfig, T: int) -> None:
    if config.fail_at and T != config.fail_at:
        return
    if name == "test-raises":
        raise ValueError("this model always fails")
    if name == "test-hog":
        hoard = [torch.ones(2**26) for _ in range(32)]  # 32 x 256 MiB
        del hoard
    if name == "test-hang":
        time.sleep(3600)
    if name == "test-kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if name == "test-oom-long" and T > config.max_ok_len:
        raise torch.OutOfMemoryError(f"simulated: seq_len {T} > {config.max_ok_len}")


class TinyBlock(nn.Module):
    fault = "test-tiny"

    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        self.config = config
        self.proj = nn.Linear(config.d_model, config.d_model)

    @property
    def backend(self) -> str:
        return f"pid-{os.getpid()}" if self.fault.startswith("test-pid") else "test"

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, T, D)
        _fault(self.fault, self.config, x.shape[1])
        if self.fault == "test-nan" and self.training:
            self.calls = getattr(self, "calls", 0) + 1
            if self.config.nan_after and self.calls > self.config.nan_after:
                x = x * float("nan")
        if self.config.sleep_s:
            time.sleep(self.config.sleep_s)
        if self.config.alloc_mb:
            held = torch.ones(self.config.alloc_mb * 2**18)  # alloc_mb MiB of float32, touched
            x = x + held[0]
        return x + self.proj(x)


class TinyLM(nn.Module):
    block_cls = TinyBlock

    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.block = self.block_cls(config)
        self.head = nn.Linear(config.d_model, config.vocab_size)

    @property
    def backend(self) -> str:
        return "test"

    def forward(self, idx: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, V)
        return self.head(self.block(self.embed(idx)))


def _register(name: str) -> None:
    block = type(f"Block_{name}", (TinyBlock,), {"fault": name})
    lm = type(f"LM_{name}", (TinyLM,), {"block_cls": block})
    register_model(name, family="test", config=TinyConfig, block=block, description=f"test-only: {name}")(lm)


register_model("test-lm-only", family="test", config=TinyConfig, description="test-only: no block")(TinyLM)

for _name in (
    "test-tiny",
    "test-pid",
    "test-pid2",
    "test-raises",
    "test-hog",
    "test-hang",
    "test-kill",
    "test-oom-long",
    "test-nan",
):
    _register(_name)
