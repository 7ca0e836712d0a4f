"""FLOP counts: the same math gives the same count on every backend (fused == reference GAM,
SDPA == naive Transformer), at block and LM level, forward and forward+backward, on the CPU."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gam_bench.measure import flops
from gam_bench.models import registry

B, T, D = 2, 64, 32


def _count(module: nn.Module, x: torch.Tensor, backward: bool) -> int:
    if not backward:
        module.eval()
        with torch.no_grad():
            return flops.count_flops(lambda: module(x))
    module.train()
    return flops.count_flops(lambda: module(x).float().mean().backward())


def _build(model: str, level: str, **overrides) -> nn.Module:
    torch.manual_seed(0)
    base = {"d_model": D, "max_seq_len": T, "dropout": 0.0, **overrides}
    if level == "lm":
        return registry.build(model, vocab_size=97, n_layers=2, **base)
    return registry.build_block(model, **base)


def _input(level: str) -> torch.Tensor:
    if level == "lm":
        return torch.randint(0, 97, (B, T))  # (B, T)
    return torch.randn(B, T, D, requires_grad=True)  # (B, T, D)


PAIRS = [
    (("transformer", {"n_heads": 2}), ("transformer-naive", {"n_heads": 2})),
    (("gam", {"impl": "fused", "num_memory_slots": 48}), ("gam", {"impl": "reference", "num_memory_slots": 48})),
    (("gam-global-only", {"impl": "fused"}), ("gam-global-only", {"impl": "reference"})),
]


@pytest.mark.parametrize("backward", [False, True], ids=["forward", "forward_backward"])
@pytest.mark.parametrize("level", ["block", "lm"])
@pytest.mark.parametrize(("fast", "reference"), PAIRS, ids=lambda p: f"{p[0]}:{p[1]}")
def test_fast_path_counts_the_same_flops_as_its_reference(fast, reference, level, backward):
    x = _input(level)
    got = _count(_build(fast[0], level, **fast[1]), x, backward)
    want = _count(_build(reference[0], level, **reference[1]), x, backward)
    assert got == want and got > 0


def test_sdpa_attention_flops_are_counted_on_cpu():
    """Before: CPU SDPA had no formula, so the attention matmuls counted 0."""
    q = torch.randn(1, 1, T, D, requires_grad=True)
    n = flops.count_flops(lambda: nn.functional.scaled_dot_product_attention(q, q, q).sum().backward())
    assert n == 2 * (2 * T * T * D) * 3  # fwd: q k^T and p v; bwd: 4 matmuls (no recomputation)


def test_transformer_attention_matches_the_analytic_count():
    """One block, forward: 4 projections + 2 MLP matmuls (2*B*T*D*12D) + attention (2 * 2*B*T*T*D)."""
    block = _build("transformer", "block", n_heads=2)
    n = _count(block, _input("block"), backward=False)
    assert n == 2 * B * T * D * 12 * D + 2 * 2 * B * T * T * D


def test_depthwise_conv_backward_costs_two_forwards():
    conv = nn.Conv1d(D, D, 3, groups=D, padding=2)
    x = torch.randn(B, D, T, requires_grad=True)
    with torch.no_grad():
        forward = flops.count_flops(lambda: conv(x))
    both = flops.count_flops(lambda: conv(x).sum().backward())
    assert both == 3 * forward  # forward + grad input + grad weight; torch alone counted D x more


def test_cuda_sdpa_backward_formula_leaves_out_recomputation():
    """The CUDA kernels' formula, called with the shapes the counter passes (runs on CPU)."""
    formula = flops.FORMULAS[torch.ops.aten._scaled_dot_product_flash_attention_backward]
    q = (B, 2, T, 16)
    n = formula(q, q, q, q)
    assert n == 4 * 2 * B * 2 * T * T * 16


def test_mamba_ssm_rows_get_no_partial_count():
    assert not flops.counts_every_kernel("mamba-ssm")
    assert not flops.counts_every_kernel("mamba-ssm-fused")
    assert flops.counts_every_kernel("torch-chunked-scan") and flops.counts_every_kernel("fused")
    assert not flops.counts_every_kernel("fla-chunk")  # GLA / RetNet on fla's Triton kernels
    assert flops.counts_every_kernel("torch-chunked")  # the same models' torch op, counted with its formula


def test_the_counted_step_uses_the_same_formulas():
    """`count_step` (the throughput task's counted step) counts what `count_flops` counts, CPU
    SDPA included (before: torch's own table, which has no CPU SDPA formula)."""
    from gam_bench.measure.counted_step import count_step

    q = torch.randn(1, 1, T, D, requires_grad=True)

    def step() -> None:
        nn.functional.scaled_dot_product_attention(q, q, q).sum().backward()

    assert count_step(step, flops=True).flops == flops.count_flops(step) == 2 * (2 * T * T * D) * 3
