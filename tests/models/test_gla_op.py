"""The GLA op family (gam_bench.models.ops.gla): the chunked form equals the step-by-step
recurrence, forward and backward, at lengths that are and are not multiples of the chunk,
for GLA (decay per key dim), simple GLA (scalar per head) and retention (fixed per head);
in float64, float32 and bfloat16; with strong decays (the pairwise path); with an initial
and a final state; and its FLOPs include the elementwise work the counter cannot see."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gam_bench.measure.flops import count_flops
from gam_bench.models.ops import gla as ops

TOL = {torch.float64: (1e-10, 1e-10), torch.float32: (1e-5, 1e-5), torch.bfloat16: (2e-2, 5e-2)}
GRAD_TOL = {torch.float64: (1e-9, 1e-9), torch.float32: (1e-4, 1e-4), torch.bfloat16: (2e-2, 5e-2)}


def _inputs(T, dtype=torch.float32, B=2, H=3, K=5, V=6, gate_scale=1.0, scalar_gate=False, seed=0):
    g = torch.Generator().manual_seed(seed + T)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    gate = F.logsigmoid(r(B, T, H) if scalar_gate else r(B, T, H, K)) * gate_scale
    x = dict(q=r(B, T, H, K), k=r(B, T, H, K), v=r(B, T, H, V), g=gate, h0=r(B, H, K, V))
    return {key: t.to(dtype).requires_grad_() for key, t in x.items()}


def _close(a, b, tol, msg=""):
    rtol, atol = tol
    torch.testing.assert_close(a.float(), b.float(), rtol=rtol, atol=atol, msg=msg)


def _check(fast, ref, x, dtype):
    """fast and ref: (q, k, v, g, h0) -> (o, final state); compare outputs and all gradients."""
    o_fast, s_fast = fast(x["q"], x["k"], x["v"], x["g"], x["h0"])
    o_ref, s_ref = ref(x["q"], x["k"], x["v"], x["g"], x["h0"])
    assert o_fast.dtype == dtype and s_fast.dtype == torch.promote_types(dtype, torch.float32)
    _close(o_fast, o_ref, TOL[dtype], "o")
    _close(s_fast, s_ref, TOL[dtype], "final state")
    go, gs = torch.randn_like(o_ref), torch.randn_like(s_ref)
    wrt = list(x.values())
    grads_fast = torch.autograd.grad((o_fast.float() * go.float()).sum() + (s_fast * gs).sum(), wrt)
    grads_ref = torch.autograd.grad((o_ref.float() * go.float()).sum() + (s_ref * gs).sum(), wrt)
    for key, a, b in zip(x, grads_fast, grads_ref):
        _close(a, b, GRAD_TOL[dtype], f"d{key}")


def _gla(chunk):
    return lambda q, k, v, g, h0: ops.chunk_gla(q, k, v, g, initial_state=h0, output_final_state=True, chunk_size=chunk)


def _gla_ref(q, k, v, g, h0):
    return ops.recurrent_gla(q.double(), k.double(), v.double(), g.double(), None, h0.double(), True)


@pytest.mark.parametrize("T", [1, 15, 16, 17, 33, 64, 100])
def test_chunk_gla_equals_recurrence_fp32(T):
    """chunk 16: T=16/64 are multiples, 1/15/17/33/100 are not."""
    x = _inputs(T, gate_scale=1 / 16)
    _check(_gla(16), lambda *a: ops.recurrent_gla(*a[:4], None, a[4], True), x, torch.float32)


@pytest.mark.parametrize("T", [7, 64, 130])
def test_chunk_gla_default_chunk_equals_recurrence_fp64(T):
    _check(_gla(ops.DEFAULT_CHUNK_SIZE), _gla_ref, _inputs(T, torch.float64, gate_scale=1 / 16), torch.float64)


@pytest.mark.parametrize("T", [17, 64])
def test_chunk_gla_bf16_inputs(T):
    """bfloat16 inputs: the op computes in float32, so the error is bf16 rounding of o (and of the inputs' grads)."""
    x = _inputs(T, torch.bfloat16, gate_scale=1 / 16)
    _check(_gla(16), _gla_ref, x, torch.bfloat16)


@pytest.mark.parametrize("T", [5, 40, 129])
def test_strong_decay_takes_the_pairwise_path_and_stays_exact(T, monkeypatch):
    """Gates of -20 per step: a chunk's decay is far past e^-60, where q exp(b) k exp(-b) overflows."""
    calls = []
    pairwise = ops._weights_pairwise
    monkeypatch.setattr(ops, "_weights_pairwise", lambda *a: calls.append(1) or pairwise(*a))
    x = _inputs(T, gate_scale=20.0)
    o, _ = ops.chunk_gla(x["q"], x["k"], x["v"], x["g"], chunk_size=16)
    assert o.isfinite().all() and calls
    _check(_gla(16), lambda *a: ops.recurrent_gla(*a[:4], None, a[4], True), x, torch.float32)


def test_mild_decay_takes_the_factorised_path(monkeypatch):
    monkeypatch.setattr(ops, "_weights_pairwise", lambda *a: pytest.fail("pairwise path taken"))
    x = _inputs(200, gate_scale=1 / 16)
    ops.chunk_gla(x["q"], x["k"], x["v"], x["g"])


@pytest.mark.parametrize("chunk", [1, 3, 16, 64, 256])
def test_chunk_size_does_not_change_the_result(chunk):
    x = _inputs(70, gate_scale=1 / 16)
    o, s = _gla(chunk)(*x.values())
    o_ref, s_ref = ops.recurrent_gla(*list(x.values())[:4], None, x["h0"], True)
    _close(o, o_ref, TOL[torch.float32])
    _close(s, s_ref, TOL[torch.float32])


def test_no_initial_state_and_no_final_state():
    x = _inputs(20)
    o, s = ops.chunk_gla(x["q"], x["k"], x["v"], x["g"], chunk_size=8)
    o_ref, s_ref = ops.recurrent_gla(x["q"], x["k"], x["v"], x["g"])
    assert s is None and s_ref is None
    _close(o, o_ref, TOL[torch.float32])


def test_gradcheck_float64():
    x = _inputs(11, torch.float64, B=1, H=2, K=3, V=2)
    fn = lambda q, k, v, g, h0: ops.chunk_gla(q, k, v, g, None, h0, True, chunk_size=4)  # noqa: E731
    assert torch.autograd.gradcheck(fn, tuple(x.values()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("T", [9, 16, 50])
def test_simple_gla_equals_its_recurrence(T, dtype):
    x = _inputs(T, dtype, scalar_gate=True)
    fast = lambda q, k, v, g, h0: ops.chunk_simple_gla(q, k, v, g, None, h0, True, chunk_size=16)  # noqa: E731
    ref = lambda q, k, v, g, h0: ops.recurrent_simple_gla(
        q.double(), k.double(), v.double(), g.double(), None, h0.double(), True
    )  # noqa: E731,E501
    _check(fast, ref, x, dtype)


@pytest.mark.parametrize("T", [10, 64, 90])
def test_retention_equals_its_recurrence_and_uses_retnets_decay(T):
    x = _inputs(T, H=4)
    o, s = ops.chunk_retention(x["q"], x["k"], x["v"], None, x["h0"], True, chunk_size=32)
    o_ref, s_ref = ops.recurrent_retention(x["q"], x["k"], x["v"], None, x["h0"], True)
    _close(o, o_ref, TOL[torch.float32])
    _close(s, s_ref, TOL[torch.float32])
    gamma = 1 - 2.0 ** (-5 - torch.arange(4.0))
    torch.testing.assert_close(ops.retention_log_decay(4).exp(), gamma)
    # retention is simple GLA with that gate: one op
    g = gamma.log().expand(2, T, 4)
    torch.testing.assert_close(o, ops.chunk_simple_gla(x["q"], x["k"], x["v"], g, None, x["h0"], chunk_size=32)[0])


def test_gla_step_is_one_step_of_the_recurrence():
    x = _inputs(3)
    o, s = ops.recurrent_gla(x["q"], x["k"], x["v"], x["g"], 0.5, x["h0"], True)
    state = x["h0"]
    for t in range(3):
        o_t, state = ops.gla_step(x["q"][:, t], x["k"][:, t], x["v"][:, t], x["g"][:, t], state, 0.5)
        _close(o_t, o[:, t], TOL[torch.float32])
    _close(state, s, TOL[torch.float32])


@pytest.mark.parametrize("factorised", [True, False])
def test_flops_add_the_elementwise_formula_to_the_counted_matmuls(factorised, monkeypatch):
    B, T, H, K, V, C = 1, 100, 2, 4, 3, 16
    x = _inputs(T, B=B, H=H, K=K, V=V, gate_scale=1 / 16 if factorised else 40.0)

    def step():
        o, _ = ops.chunk_gla(x["q"], x["k"], x["v"], x["g"], chunk_size=C)
        o.sum().backward()

    total = count_flops(step)
    monkeypatch.setattr(ops, "counted", lambda o, fwd, bwd: o)
    seen = count_flops(step)
    fwd, bwd = ops._chunk_gla_flops(B, H, T, K, V, C, factorised)
    assert seen > 0 and total == seen + fwd + bwd
    assert fwd > 0 and bwd == 2 * fwd
