"""Sliding-window attention: the blocked form equals the naive banded twin (forward and
backward, lengths that are and are not multiples of the window, fp64/fp32/bf16); a token
outside the window has no effect; the ring KV cache decodes like the full forward across
many wraps; parameters, FLOPs (linear in T) and compile parity."""

from __future__ import annotations

import pytest
import torch

from gam_bench.measure.flops import count_flops
from gam_bench.models import build, build_block
from gam_bench.models.decode import state_bytes

TINY = {"d_model": 32, "n_heads": 4, "max_seq_len": 128, "dropout": 0.0}
TOL = {torch.float64: (1e-10, 1e-10), torch.float32: (1e-5, 1e-5), torch.bfloat16: (2e-2, 5e-2)}


def _twins(window, dtype=torch.float32):
    blocked = build_block("swa", **TINY, window=window).to(dtype).eval()
    naive = build_block("swa", **TINY, window=window, impl="naive").to(dtype).eval()
    naive.load_state_dict(blocked.state_dict())
    assert (blocked.backend, naive.backend) == ("blocked-sdpa", "naive")
    return blocked, naive


@pytest.mark.parametrize("dtype", list(TOL), ids=str)
@pytest.mark.parametrize("window, T", [(1, 9), (4, 3), (4, 4), (4, 5), (4, 16), (16, 33), (16, 48), (7, 100)])
def test_blocked_equals_naive_forward_and_backward(window, T, dtype):
    blocked, naive = _twins(window, dtype)
    x = torch.randn(2, T, 32, dtype=dtype, requires_grad=True)
    y_b, y_n = blocked(x), naive(x)
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(y_b, y_n, rtol=rtol, atol=atol)
    g = torch.randn_like(y_n)
    grads_b = torch.autograd.grad(y_b, [x, *blocked.parameters()], g)
    grads_n = torch.autograd.grad(y_n, [x, *naive.parameters()], g)
    for a, b in zip(grads_b, grads_n):
        torch.testing.assert_close(a, b, rtol=rtol * 10, atol=atol * 10)


@pytest.mark.parametrize("impl", ["blocked", "naive"])
def test_a_token_outside_the_window_has_no_effect(impl):
    W, T = 5, 23
    block = build_block("swa", **TINY, window=W, impl=impl).eval()
    x = torch.randn(1, T, 32)
    changed = x.clone()
    changed[:, 10] += 1.0
    with torch.no_grad():
        base, out = block(x), block(changed)
    torch.testing.assert_close(out[:, :10], base[:, :10], rtol=0, atol=0)  # causal
    assert not torch.allclose(out[:, 10 : 10 + W], base[:, 10 : 10 + W])  # inside the window
    torch.testing.assert_close(out[:, 10 + W :], base[:, 10 + W :], rtol=0, atol=1e-6)  # outside it


def test_a_window_as_long_as_the_sequence_is_full_causal_attention():
    swa = build("swa", **TINY, n_layers=2, vocab_size=97, window=64).eval()
    tf = build("transformer", **TINY, n_layers=2, vocab_size=97).eval()
    tf.load_state_dict(swa.state_dict())  # the same keys
    idx = torch.randint(0, 97, (2, 64))
    with torch.no_grad():
        torch.testing.assert_close(swa(idx), tf(idx), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("T", [1, 3, 4, 5, 13])
def test_ring_cache_decodes_like_the_forward_across_wraps(T):
    W, G = 4, 11  # 11 decoded tokens wrap the 4-slot ring about three times
    block = build_block("swa", **TINY, window=W).eval()
    x = torch.randn(2, T + G, 32)
    with torch.no_grad():
        full = block(x)
        out, state = block.prefill(x[:, :T])
        outs = [out]
        for t in range(T, T + G):
            step, state = block.decode(x[:, t : t + 1], state)
            outs.append(step)
    torch.testing.assert_close(torch.cat(outs, dim=1), full, rtol=1e-5, atol=1e-5)
    assert state.k.shape == (2, 4, W, 8) and int(state.position) == T + G
    assert state_bytes(state) == 2 * 2 * W * 32 * 4 + 8


def test_param_count_is_the_transformers():
    count = sum(p.numel() for p in build("swa").parameters())
    gam = sum(p.numel() for p in build("gam").parameters())
    assert abs(count / 1e6 - 24.17) < 0.005 and abs(count / gam - 1) < 0.10
    assert count == sum(p.numel() for p in build("transformer").parameters())


def test_flops_are_linear_in_T_and_count_the_attention():
    W = 16
    block = build_block("swa", **TINY, window=W)
    full = build_block("transformer", **TINY)

    def flops(module, T):
        x = torch.randn(1, T, 32, requires_grad=True)
        return count_flops(lambda: module(x).sum().backward())

    f2, f3, f4 = (flops(block, n * W) for n in (2, 3, 4))
    assert f3 - f2 == f4 - f3 > 0  # each further block of W queries costs the same
    assert f4 < flops(full, 4 * W)  # full attention counts (4W)^2 scores
    assert f4 > flops(build_block("swa", **TINY, window=1), 4 * W)  # the window's scores are counted


def test_compiled_block_matches_eager():
    torch._dynamo.reset()
    block = build_block("swa", **TINY, window=8).eval()
    x = torch.randn(1, 30, 32, requires_grad=True)
    eager = block(x)
    g_eager = torch.autograd.grad(eager.sum(), x)[0]
    out = torch.compile(block, backend="aot_eager")(x)
    g_out = torch.autograd.grad(out.sum(), x)[0]
    torch.testing.assert_close(out, eager, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g_out, g_eager, rtol=1e-5, atol=1e-5)
    torch._dynamo.reset()
