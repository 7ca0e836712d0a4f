"""Hyena: the FFT long convolution equals the direct causal convolution (forward and
backward, fp64/fp32/bf16, lengths 1..130), the block's two impls agree, safari's key names,
the filter's length cap, FLOPs of the FFTs by formula, parameters, compile parity."""

from __future__ import annotations

import pytest
import torch

from gam_bench.measure.flops import count_flops
from gam_bench.models import build, build_block
from gam_bench.models.ops import long_conv

TINY = {"d_model": 32, "max_seq_len": 160, "dropout": 0.0}
TOL = {torch.float64: (1e-10, 1e-10), torch.float32: (1e-5, 1e-5), torch.bfloat16: (2e-2, 5e-2)}


@pytest.mark.parametrize("dtype", list(TOL), ids=str)
@pytest.mark.parametrize("T", [1, 2, 7, 64, 100, 130])
def test_fft_conv_equals_direct_conv(T, dtype):
    u = torch.randn(2, 5, T, dtype=dtype, requires_grad=True)
    k = (torch.randn(5, T, dtype=torch.float64) * torch.exp(-torch.arange(T) / 20.0)).to(dtype).requires_grad_()
    fast, ref = long_conv.fft_conv(u, k), long_conv.direct_conv(u.double(), k.double())
    rtol, atol = TOL[dtype]
    assert fast.dtype == dtype
    torch.testing.assert_close(fast.double(), ref, rtol=rtol, atol=atol)
    g = torch.randn_like(ref)
    grads_fast = torch.autograd.grad(fast, [u, k], g.to(dtype))
    grads_ref = torch.autograd.grad(ref, [u, k], g)
    for a, b in zip(grads_fast, grads_ref):
        torch.testing.assert_close(a.double(), b.double(), rtol=rtol * 10, atol=atol * 10)


def test_direct_conv_is_the_causal_sum():
    u, k = torch.randn(1, 2, 6, dtype=torch.float64), torch.randn(2, 6, dtype=torch.float64)
    expected = torch.stack([sum(k[:, t - s] * u[0, :, s] for s in range(t + 1)) for t in range(6)], dim=-1)
    torch.testing.assert_close(long_conv.direct_conv(u, k)[0], expected)


@pytest.mark.parametrize("T", [1, 9, 64, 150])
def test_block_fft_equals_direct_forward_and_backward(T):
    fft = build_block("hyena", **TINY).eval()
    direct = build_block("hyena", **TINY, impl="direct").eval()
    direct.load_state_dict(fft.state_dict())
    assert (fft.backend, direct.backend) == ("fft-conv", "direct-conv")
    x = torch.randn(2, T, 32, requires_grad=True)
    y_fft, y_direct = fft(x), direct(x)
    torch.testing.assert_close(y_fft, y_direct, rtol=1e-5, atol=1e-5)
    grads_fft = torch.autograd.grad(y_fft.square().sum(), [x, *fft.parameters()])
    grads_direct = torch.autograd.grad(y_direct.square().sum(), [x, *direct.parameters()])
    for (key, _), a, b in zip([("x", None), *fft.named_parameters()], grads_fft, grads_direct):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4, msg=key)


def test_keys_are_safaris():
    keys = set(build_block("hyena", **TINY).attn.state_dict())
    assert {
        "in_proj.weight",
        "out_proj.weight",
        "short_filter.weight",
        "filter_fn.bias",
        "filter_fn.pos_emb.z",
        "filter_fn.pos_emb.t",
        "filter_fn.implicit_filter.0.weight",
        "filter_fn.implicit_filter.1.freq",
        "filter_fn.implicit_filter.6.weight",
        "filter_fn.modulation.deltas",
    } <= keys
    assert "filter_fn.implicit_filter.6.bias" not in keys


def test_longer_than_the_filter_is_a_clear_error():
    block = build_block("hyena", **{**TINY, "max_seq_len": 8}).eval()
    with pytest.raises(ValueError, match="max_seq_len=8"):
        block(torch.randn(1, 9, 32))
    with torch.no_grad():
        _, state = block.prefill(torch.randn(1, 8, 32))
        with pytest.raises(ValueError, match="max_seq_len=8"):
            block.decode(torch.randn(1, 1, 32), state)


def test_decode_state_grows_one_position_per_token():
    block = build_block("hyena", **TINY).eval()
    x = torch.randn(2, 20, 32)
    with torch.no_grad():
        out, state = block.prefill(x[:, :12])
        assert state.history.shape == (2, 32, 12) and state.window.shape == (2, 96, 2)
        steps = []
        for t in range(12, 20):
            step, state = block.decode(x[:, t : t + 1], state)
            steps.append(step)
        assert state.history.shape == (2, 32, 20)
        torch.testing.assert_close(torch.cat([out, *steps], dim=1), block(x), rtol=1e-5, atol=1e-5)


def test_fft_flops_are_counted_by_formula():
    B, D, T = 2, 3, 50
    u = torch.randn(B, D, T, requires_grad=True)
    k = torch.randn(D, T, requires_grad=True)
    counted = count_flops(lambda: long_conv.fft_conv(u, k).sum().backward())
    forward, backward = long_conv.fft_conv_flops(B, D, T)
    assert counted == forward + backward > 0  # no matmul inside: the formula is all there is
    assert count_flops(lambda: long_conv.direct_conv(u, k).sum().backward()) > 0  # a convolution, seen


def test_param_count_at_the_paper_config_is_within_10_percent_of_gam():
    count = sum(p.numel() for p in build("hyena").parameters())
    gam = sum(p.numel() for p in build("gam").parameters())
    assert abs(count / 1e6 - 24.46) < 0.005 and abs(count / gam - 1) < 0.10


def test_compiled_block_matches_eager():
    torch._dynamo.reset()
    block = build_block("hyena", **TINY).eval()
    x = torch.randn(1, 30, 32, requires_grad=True)
    eager = block(x)
    g_eager = torch.autograd.grad(eager.sum(), x)[0]
    out = torch.compile(block, backend="aot_eager")(x)
    g_out = torch.autograd.grad(out.sum(), x)[0]
    torch.testing.assert_close(out, eager, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g_out, g_eager, rtol=1e-5, atol=1e-5)
    torch._dynamo.reset()
