"""The O(N) field on a real GPU (skipped without CUDA; marker cuda): flash-linear-attention's chunked
kernels against gam-bench's torch ops and blocks (skipped without fla), sliding-window attention's
blocked form against its naive twin, Hyena's FFT convolution against the direct one; forward and
backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gam_bench.models import backends, registry
from gam_bench.models.ops import gla as ops

TOL = {torch.float32: 2e-3, torch.bfloat16: 5e-2}


def _need(module: str) -> None:
    reason = backends.fla_reason(module)
    if reason:
        pytest.skip(reason)


def _inputs(T, dtype, scalar_gate=False):
    torch.manual_seed(0)
    B, H, K, V = 2, 4, 64, 64
    r = lambda *s: torch.randn(*s, device="cuda")  # noqa: E731
    g = F.logsigmoid(r(B, T, H) if scalar_gate else r(B, T, H, K)) / 16
    x = [r(B, T, H, K), r(B, T, H, K), r(B, T, H, V), g, r(B, H, K, V)]
    return [t.to(dtype).requires_grad_() if i < 3 else t.requires_grad_() for i, t in enumerate(x)]


def _fwd_bwd(fn, x):
    o, s = fn(*x[:4], scale=None, initial_state=x[4], output_final_state=True)
    (o.float().square().mean() + s.square().mean()).backward()
    grads = [t.grad.float().clone() for t in x]
    for t in x:
        t.grad = None
    return [o.float(), s.float(), *grads]


@pytest.mark.parametrize("T", [64, 100, 1000])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_fla_chunk_gla_matches_torch_op(T, dtype):
    _need("fla.ops.gla")
    from fla.ops.gla import chunk_gla

    x = _inputs(T, dtype)
    ours = _fwd_bwd(lambda q, k, v, g, **kw: ops.chunk_gla(q, k, v, g, **kw), x)
    theirs = _fwd_bwd(lambda q, k, v, g, **kw: chunk_gla(q=q, k=k, v=v, g=g, **kw), x)
    for a, b in zip(theirs, ours):
        torch.testing.assert_close(a, b, atol=TOL[dtype], rtol=TOL[dtype])


@pytest.mark.parametrize("T", [64, 100])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_fla_chunk_simple_gla_matches_torch_op(T, dtype):
    _need("fla.ops.simple_gla")
    from fla.ops.simple_gla import chunk_simple_gla

    x = _inputs(T, dtype, scalar_gate=True)
    ours = _fwd_bwd(lambda q, k, v, g, **kw: ops.chunk_simple_gla(q, k, v, g, **kw), x)
    theirs = _fwd_bwd(lambda q, k, v, g, **kw: chunk_simple_gla(q=q, k=k, v=v, g=g, **kw), x)
    for a, b in zip(theirs, ours):
        torch.testing.assert_close(a, b, atol=TOL[dtype], rtol=TOL[dtype])


@pytest.mark.parametrize("name, module", [("gla", "fla.ops.gla"), ("retnet", "fla.ops.simple_gla")])
def test_fla_block_matches_torch_block_and_decodes(name, module):
    _need(module)
    torch.manual_seed(0)
    kw = {"d_model": 64, "dropout": 0.0, "max_seq_len": 512}
    kernel = registry.build_block(name, backend="fla", **kw).cuda()
    ref = registry.build_block(name, backend="torch", **kw).cuda()
    ref.load_state_dict(kernel.state_dict())
    assert kernel.backend == "fla-chunk" and ref.backend == "torch-chunked"
    x = torch.randn(2, 300, 64, device="cuda")
    results = []
    for block in (kernel, ref):
        xi = x.clone().requires_grad_(True)
        y = block(xi)
        y.square().mean().backward()
        results.append((y, xi.grad, block.attn.q_proj.weight.grad))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=2e-3, rtol=2e-3)
    with torch.no_grad():
        out, state = kernel.prefill(x[:, :290])
        steps = [kernel.decode(x[:, t : t + 1], state)[0] for t in range(290, 300)]
        state_free = kernel(x)
    torch.testing.assert_close(torch.cat([out, *steps], dim=1), state_free, atol=2e-3, rtol=2e-3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_sliding_window_blocked_matches_naive_on_cuda(dtype):
    """Not an fla kernel: the blocked SDPA form with a band mask on CUDA's attention kernels."""
    torch.manual_seed(0)
    kw = {"d_model": 64, "dropout": 0.0, "window": 64, "max_seq_len": 512}
    blocked = registry.build_block("swa", **kw).cuda()
    naive = registry.build_block("swa", impl="naive", **kw).cuda()
    naive.load_state_dict(blocked.state_dict())
    x = torch.randn(2, 300, 64, device="cuda")
    results = []
    for block in (blocked, naive):
        xi = x.clone().requires_grad_(True)
        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            y = block(xi)
        y.float().square().mean().backward()
        results.append((y.float(), xi.grad))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=TOL[dtype], rtol=TOL[dtype])


@pytest.mark.parametrize("T", [100, 2048])
def test_hyena_fft_matches_direct_conv_on_cuda(T):
    """cuFFT against the direct causal convolution, forward and backward."""
    from gam_bench.models.ops.long_conv import direct_conv, fft_conv

    torch.manual_seed(0)
    u = torch.randn(2, 64, T, device="cuda", requires_grad=True)
    k = (torch.randn(64, T, device="cuda") * torch.exp(-torch.arange(T, device="cuda") / 50.0)).requires_grad_()
    outs = []
    for conv in (fft_conv, direct_conv):
        y = conv(u, k)
        grads = torch.autograd.grad(y.square().mean(), [u, k])
        outs.append((y, *grads))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, atol=2e-3, rtol=2e-3)
