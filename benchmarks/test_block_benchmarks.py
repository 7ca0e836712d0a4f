"""Every registered block at one fixed small shape, forward and forward+backward.

Shapes: B=2, T=256, d_model=64 (other config fields at their defaults, dropout 0), float32,
CPU (or the first accelerator when GAM_BENCH_BENCH_DEVICE says so). These catch slowdowns in
a block's code; the scaling behaviour is what `gam-bench run suites/scaling.yaml` measures.
"""

from __future__ import annotations

import os

import pytest
import torch

from gam_bench.models import registry

B, T, D = 2, 256, 64
DEVICE = torch.device(os.environ.get("GAM_BENCH_BENCH_DEVICE", "cpu"))


def _block(name: str) -> torch.nn.Module:
    spec = registry.get_spec(name)
    if spec.block_cls is None:
        pytest.skip(f"{name} has no block-level implementation")
    fields = spec.config_cls.model_fields
    overrides = {"d_model": D, **{k: v for k, v in (("max_seq_len", T), ("dropout", 0.0)) if k in fields}}
    torch.manual_seed(0)
    return registry.build_block(name, **overrides).to(DEVICE)


def _sync() -> None:
    if DEVICE.type != "cpu":
        torch.accelerator.synchronize()


@pytest.mark.parametrize("name", registry.available())
def test_forward(benchmark, name):
    block = _block(name).eval()
    x = torch.randn(B, T, D, device=DEVICE)  # (B, T, D)

    def step() -> None:
        with torch.no_grad():
            block(x)  # (B, T, D)
        _sync()

    benchmark.group = "forward"
    benchmark.extra_info["backend"] = str(getattr(block, "backend", ""))
    benchmark(step)


@pytest.mark.parametrize("name", registry.available())
def test_forward_backward(benchmark, name):
    block = _block(name).train()
    x = torch.randn(B, T, D, device=DEVICE, requires_grad=True)  # (B, T, D)

    def step() -> None:
        block.zero_grad(set_to_none=True)
        x.grad = None
        block(x).mean().backward()  # (B, T, D) -> scalar
        _sync()

    benchmark.group = "forward_backward"
    benchmark.extra_info["backend"] = str(getattr(block, "backend", ""))
    benchmark(step)
