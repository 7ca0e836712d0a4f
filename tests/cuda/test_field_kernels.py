"""The O(N) field's CUDA kernels against the torch chunked forms, forward and backward (skipped
without CUDA, or without the kernel package: the skip says why, from models.backends)."""

from __future__ import annotations

import pytest
import torch

from gam_bench.models import backends, registry

# model -> (kernel backend value, why the kernel cannot run here or None, tiny overrides)
KERNELS = {
    "mamba2": ("mamba-ssm", backends.ssd_kernel_reason, {"d_model": 64, "headdim": 32, "d_state": 64}),
    "gated-deltanet": (
        "fla",
        lambda: backends.fla_reason("fla.ops.gated_delta_rule"),
        {"d_model": 64, "num_heads": 2, "head_dim": 64},
    ),
    "gated-deltanet-hybrid": (
        "fla",
        lambda: backends.fla_reason("fla.ops.gated_delta_rule"),
        {"d_model": 64, "num_heads": 2, "head_dim": 64, "max_seq_len": 1024},
    ),
}
TOL = {torch.float32: 2e-3, torch.bfloat16: 5e-2}


@pytest.mark.parametrize("T", [256, 1000])  # a multiple of the kernels' chunks, and not
@pytest.mark.parametrize("dtype", list(TOL), ids=str)
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernel_matches_torch_chunked_form_fwd_bwd(name, dtype, T):
    backend, reason, overrides = KERNELS[name]
    if reason() is not None:
        pytest.skip(f"{name} kernel unavailable: {reason()}")
    torch.manual_seed(0)
    kw = {"max_seq_len": 1024, **overrides, "dropout": 0.0}
    kernel = registry.build_block(name, backend=backend, **kw).cuda()
    ref = registry.build_block(name, backend="torch", **kw).cuda()
    ref.load_state_dict(kernel.state_dict())
    assert kernel.backend != ref.backend
    x = torch.randn(2, T, kw["d_model"], device="cuda")  # (B, T, D)
    results = []
    for block in (kernel, ref):
        xi = x.clone().requires_grad_(True)
        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            y = block(xi)
        y.float().square().mean().backward()
        results.append([y.float(), xi.grad, *(p.grad for p in block.parameters())])
    tol = TOL[dtype]
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=tol, rtol=tol * 10)


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernel_prefill_state_continues_with_the_torch_decode(name):
    backend, reason, overrides = KERNELS[name]
    if reason() is not None:
        pytest.skip(f"{name} kernel unavailable: {reason()}")
    torch.manual_seed(0)
    block = registry.build_block(name, backend=backend, **{"max_seq_len": 1024, **overrides}, dropout=0.0).cuda().eval()
    x = torch.randn(2, 300, overrides["d_model"], device="cuda")
    with torch.no_grad():
        full = block(x)
        out, state = block.prefill(x[:, :299])
        last, _ = block.decode(x[:, 299:], state)
    torch.testing.assert_close(torch.cat([out, last], 1), full, atol=2e-3, rtol=2e-3)
