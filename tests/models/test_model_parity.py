"""Fast paths equal their references: GAM fused vs reference, SDPA vs naive attention,
the chunked selective scan vs a sequential scan."""

from __future__ import annotations

import pytest
import torch
from zoo_reference import sequential_scan

from gam_bench.models import build, build_block
from gam_bench.models.selective_scan import _ChunkedScan, chunked_selective_scan

TOL = {  # dtype -> (rtol, atol)
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-5, 1e-5),
    torch.bfloat16: (2e-2, 5e-2),
}


def _twins(name, tiny, field, a, b, dtype=torch.float32, block=False):
    """Two copies of one model (same weights) that differ only in `field`: a vs b."""
    make = build_block if block else build
    first = make(name, **tiny(name, **{field: a})).to(dtype).eval()
    second = make(name, **tiny(name, **{field: b})).to(dtype).eval()
    second.load_state_dict(first.state_dict())
    return first, second


@pytest.mark.parametrize("dtype", list(TOL), ids=str)
@pytest.mark.parametrize("T", [1, 7, 64, 300])
def test_gam_fused_equals_reference(T, dtype, tiny):
    ref, fused = _twins("gam", tiny, "impl", "reference", "fused", dtype, block=True)
    assert (ref.backend, fused.backend) == ("reference", "fused")
    x = torch.randn(2, T, 32, dtype=dtype, requires_grad=True)
    y_ref, y_fused = ref(x), fused(x)
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(y_fused, y_ref, rtol=rtol, atol=atol)
    if dtype != torch.bfloat16:
        g = torch.randn_like(y_ref)
        grads_ref = torch.autograd.grad(y_ref, [x, ref.memory_bank], g)
        grads_fused = torch.autograd.grad(y_fused, [x, fused.memory_bank], g)
        for a, b in zip(grads_fused, grads_ref):
            torch.testing.assert_close(a, b, rtol=rtol * 10, atol=atol * 10)


@pytest.mark.parametrize("name", ["gam", "gam-global-only", "gam-sum-fusion"])
def test_gam_lm_fused_equals_reference(name, tiny):
    ref, fused = _twins(name, tiny, "impl", "reference", "fused")
    idx = torch.randint(0, 97, (2, 50))
    torch.testing.assert_close(fused(idx), ref(idx), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("T", [1, 9, 64])
def test_sdpa_equals_naive_attention(T, dtype, tiny):
    naive, sdpa = _twins("transformer", tiny, "impl", "naive", "sdpa", dtype)
    assert (naive.backend, sdpa.backend) == ("naive", "sdpa")
    idx = torch.randint(0, 97, (2, T))
    y_naive, y_sdpa = naive(idx), sdpa(idx)
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(y_sdpa, y_naive, rtol=rtol, atol=atol)
    y_naive.square().mean().backward()
    y_sdpa.square().mean().backward()
    for (key, a), b in zip(naive.named_parameters(), sdpa.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=rtol * 10, atol=atol * 10, msg=key)


def _scan_inputs(L, dtype=torch.float32, batch=2, dim=6, n=4, delta_scale=1.0):
    g = torch.Generator().manual_seed(L)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    return dict(
        u=r(batch, dim, L),
        delta=r(batch, dim, L) * delta_scale,
        A=-torch.rand(dim, n, generator=g, dtype=dtype) * 4,
        B=r(batch, n, L),
        C=r(batch, n, L),
        D=r(dim),
        z=r(batch, dim, L),
        delta_bias=r(dim),
    )


@pytest.mark.parametrize("L", [1, 2, 3, 15, 16, 17, 33, 64, 100])
def test_chunked_scan_equals_sequential(L):
    inputs = {k: v.requires_grad_() for k, v in _scan_inputs(L).items()}
    ref = sequential_scan(**inputs, delta_softplus=True)
    out = chunked_selective_scan(**inputs, delta_softplus=True, chunk_size=16)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(ref)
    grads_ref = torch.autograd.grad(ref, list(inputs.values()), g)
    grads_out = torch.autograd.grad(out, list(inputs.values()), g)
    for key, a, b in zip(inputs, grads_out, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4, msg=key)


@pytest.mark.parametrize("chunk_size", [1, 5, 32, 256])
def test_chunk_size_does_not_change_the_result(chunk_size):
    inputs = _scan_inputs(70)
    ref = sequential_scan(**inputs, delta_softplus=True)
    out = chunked_selective_scan(**inputs, delta_softplus=True, chunk_size=chunk_size)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_chunked_scan_is_safe_with_strong_decay():
    # delta * A of -40 per step: a cumsum/exp formulation overflows within a few steps.
    inputs = _scan_inputs(80, delta_scale=0.0)
    inputs["delta_bias"] = torch.full_like(inputs["delta_bias"], 10.0)
    inputs["A"] = torch.full_like(inputs["A"], -4.0)
    ref = sequential_scan(**inputs, delta_softplus=True)
    out = chunked_selective_scan(**inputs, delta_softplus=True, chunk_size=64)
    assert out.isfinite().all()
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_chunked_scan_gradcheck():
    x = _scan_inputs(11, torch.float64, dim=3, n=2)
    args = [x["u"], torch.rand_like(x["delta"]), x["A"], x["B"], x["C"]]
    assert torch.autograd.gradcheck(lambda *a: _ChunkedScan.apply(*a, 4), [a.requires_grad_() for a in args])


def test_chunked_scan_keeps_fp32_under_autocast():
    inputs = _scan_inputs(40)
    ref = sequential_scan(**inputs, delta_softplus=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = chunked_selective_scan(**inputs, delta_softplus=True)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["mamba", "mamba-paper"])
def test_mamba_lm_equals_sequential_scan(name, tiny, monkeypatch):
    model = build(name, **tiny(name, backend="torch")).eval()
    assert model.backend == "torch-chunked-scan"
    idx = torch.randint(0, 97, (2, 45))  # not a multiple of the chunk size
    with torch.no_grad():
        fast = model(idx)
        monkeypatch.setattr("gam_bench.models.mamba.chunked_selective_scan", sequential_scan)
        slow = model(idx)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)


def test_torch_compile_leaves_the_chunked_scan_eager_and_matches_it():
    """dynamo sees one graph break at the scan (it would otherwise unroll the chunk loop); no inductor here."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    inputs = _scan_inputs(40)
    expected = chunked_selective_scan(**inputs, delta_softplus=True, chunk_size=8)
    compiled = torch.compile(chunked_selective_scan, backend="eager", fullgraph=False)
    out = compiled(**inputs, delta_softplus=True, chunk_size=8)
    torch.testing.assert_close(out, expected)
    breaks = " ".join(counters["graph_break"])
    assert "_opaque_scan" in breaks and counters["stats"]["unique_graphs"] <= 2
    torch._dynamo.reset()
