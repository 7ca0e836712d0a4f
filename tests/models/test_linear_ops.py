"""The linear families' core ops (gam_bench.models.ops): each chunked form equals its step-by-step
recurrent reference, forward and backward, at lengths that are and are not multiples of the
chunk, with and without an initial state, in float64/float32 (tight) and bfloat16 (tolerance by
dtype); strong decays stay finite; torch.compile gives the same values and gradients; the FLOP
counter sees every matmul-like op of the chunked forms (the triangular solve included)."""

from __future__ import annotations

import pytest
import torch

from gam_bench.measure.flops import count_flops
from gam_bench.models.ops import ssd as ssd_op
from gam_bench.models.ops.gated_delta_rule import chunk_gated_delta_rule, recurrent_gated_delta_rule
from gam_bench.models.ops.ssd import chunk_ssd, recurrent_ssd

# dtype -> relative tolerance of outputs and gradients (max |error| / max |reference|)
TOL = {torch.float64: 1e-10, torch.float32: 2e-5, torch.bfloat16: 2e-2}
CHUNK = 16
LENGTHS = [1, 15, 16, 17, 48, 70]  # below, at, just past, a multiple of, and between chunk multiples


def _inputs(op: str, T: int, dtype: torch.dtype, groups: int = 3, heads: int = 3, decay: float = 1.0):
    g = torch.Generator().manual_seed(T)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    B, K, V = 2, 8, 6
    x = {
        "q": r(B, T, groups, K),
        "k": r(B, T, groups, K) / K**0.5,
        "v": r(B, T, heads, V),
        "g": -torch.rand(B, T, heads, generator=g, dtype=torch.float64) * decay,  # log decay <= 0
    }
    if op == "gdn":
        x["beta"] = torch.rand(B, T, heads, generator=g, dtype=torch.float64)
    return {key: t.to(dtype) for key, t in x.items()}, r(B, heads, K, V).to(dtype)


OPS = {
    "ssd": (chunk_ssd, recurrent_ssd, {}),
    "gdn": (chunk_gated_delta_rule, recurrent_gated_delta_rule, {"use_qk_l2norm_in_kernel": True}),
}


def _relative(actual: torch.Tensor, expected: torch.Tensor) -> float:
    assert actual.shape == expected.shape
    return ((actual.double() - expected.double()).abs().max() / expected.double().abs().max().clamp_min(1e-30)).item()


def _run(fn, inputs, h0, **kw):
    """o, final state, and gradients of a fixed loss w.r.t. every input and h0."""
    leaves = {key: t.clone().requires_grad_() for key, t in {**inputs, "h0": h0}.items()}
    h = leaves.pop("h0")
    o, final = fn(**leaves, initial_state=h, output_final_state=True, **kw)
    weights = torch.linspace(-1, 1, o.numel(), dtype=torch.float64).view_as(o)
    loss = (o.double() * weights).sum() + final.double().square().sum()
    grads = torch.autograd.grad(loss, [*leaves.values(), h])
    return o, final, dict(zip([*leaves, "h0"], grads))


@pytest.mark.parametrize("dtype", list(TOL), ids=str)
@pytest.mark.parametrize("T", LENGTHS)
@pytest.mark.parametrize("op", sorted(OPS))
def test_chunked_equals_recurrent_forward_and_backward(op, T, dtype):
    chunked, recurrent, kw = OPS[op]
    inputs, h0 = _inputs(op, T, dtype)
    o, final, grads = _run(lambda **a: chunked(**a, chunk_size=CHUNK, **kw), inputs, h0)
    # the reference runs in float64 on the same (rounded) inputs: bfloat16 errors are the chunked form's
    ref_o, ref_final, ref_grads = _run(
        lambda **a: recurrent(**a, **kw), {k: t.double() for k, t in inputs.items()}, h0.double()
    )
    assert o.dtype == dtype and final.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    tol = TOL[dtype]
    assert _relative(o, ref_o) < tol
    assert _relative(final, ref_final) < tol
    for key, grad in grads.items():
        assert grad.dtype == dtype, key
        assert _relative(grad, ref_grads[key]) < tol * 5, key


def _spy_forms(monkeypatch) -> list[str]:
    """Record which of chunk_ssd's intra-chunk forms runs."""
    used = []
    for form in ("_factorised", "_pairwise"):
        real = getattr(ssd_op, form)
        monkeypatch.setattr(ssd_op, form, lambda *a, real=real, form=form: used.append(form) or real(*a))
    return used


@pytest.mark.parametrize("dtype", list(TOL), ids=str)
@pytest.mark.parametrize("T", LENGTHS)
def test_ssd_pairwise_form_equals_recurrent_forward_and_backward(T, dtype, monkeypatch):
    """Decays too strong to factor (here: any, SAFE_LOG_DECAY 0) take the pairwise form, with the same parity."""
    monkeypatch.setattr(ssd_op, "SAFE_LOG_DECAY", 0.0)
    used = _spy_forms(monkeypatch)
    test_chunked_equals_recurrent_forward_and_backward("ssd", T, dtype)
    assert set(used) == {"_pairwise"}


@pytest.mark.parametrize(("decay", "form"), [(1.0, "_factorised"), (50.0, "_pairwise")])
def test_ssd_factors_the_decay_only_while_it_is_safe(decay, form, monkeypatch):
    """A chunk decay within 2 * SAFE_LOG_DECAY (16 steps of at most 1 here) is factored; -50 a
    step is not (the factors would overflow), and both stay equal to the reference."""
    used = _spy_forms(monkeypatch)
    inputs, h0 = _inputs("ssd", 40, torch.float64, decay=decay)
    o, _ = chunk_ssd(**inputs, initial_state=h0, chunk_size=CHUNK)
    assert used == [form]
    assert _relative(o, recurrent_ssd(**inputs, initial_state=h0)[0]) < TOL[torch.float64]


@pytest.mark.parametrize("op", sorted(OPS))
def test_without_initial_state_and_final_state(op):
    chunked, recurrent, kw = OPS[op]
    inputs, _ = _inputs(op, 37, torch.float32)
    o, final = chunked(**inputs, chunk_size=CHUNK, **kw)
    ref, _ = recurrent(**inputs, **kw)
    assert final is None and _relative(o, ref) < TOL[torch.float32]


@pytest.mark.parametrize("op", sorted(OPS))
def test_the_final_state_continues_the_sequence(op):
    """Running [0, T) then [T, 2T) from the first half's final state equals one run over [0, 2T)."""
    chunked, _, kw = OPS[op]
    inputs, _ = _inputs(op, 50, torch.float64)
    whole, _ = chunked(**inputs, chunk_size=CHUNK, **kw)
    first, state = chunked(**{k: t[:, :23] for k, t in inputs.items()}, output_final_state=True, chunk_size=CHUNK, **kw)
    second, _ = chunked(**{k: t[:, 23:] for k, t in inputs.items()}, initial_state=state, chunk_size=CHUNK, **kw)
    assert _relative(torch.cat([first, second], dim=1), whole) < TOL[torch.float64]


@pytest.mark.parametrize("chunk_size", [1, 5, 64])
@pytest.mark.parametrize("op", sorted(OPS))
def test_chunk_size_does_not_change_the_result(op, chunk_size):
    chunked, recurrent, kw = OPS[op]
    inputs, h0 = _inputs(op, 40, torch.float64)
    o, _ = chunked(**inputs, initial_state=h0, chunk_size=chunk_size, **kw)
    assert _relative(o, recurrent(**inputs, initial_state=h0, **kw)[0]) < TOL[torch.float64]


@pytest.mark.parametrize("op", sorted(OPS))
def test_strong_decay_stays_finite(op):
    """Log decays of -50 per step: exp of a cumulative sum would underflow and its inverse overflow."""
    chunked, recurrent, kw = OPS[op]
    inputs, h0 = _inputs(op, 70, torch.float32, decay=50.0)
    o, _, grads = _run(lambda **a: chunked(**a, chunk_size=64, **kw), inputs, h0)
    ref, _, ref_grads = _run(lambda **a: recurrent(**a, **kw), inputs, h0)
    assert o.isfinite().all() and all(g.isfinite().all() for g in grads.values())
    assert _relative(o, ref) < TOL[torch.float32]
    for key in grads:
        assert _relative(grads[key], ref_grads[key]) < 1e-4, key


def test_ssd_shares_q_and_k_across_the_heads_of_a_group():
    """Mamba2's ngroups: G groups of q, k for H heads equal the same q, k repeated per head."""
    inputs, h0 = _inputs("ssd", 33, torch.float64, groups=2, heads=6)
    o, final = chunk_ssd(**inputs, initial_state=h0, output_final_state=True, chunk_size=CHUNK)
    repeated = {**inputs, "q": inputs["q"].repeat_interleave(3, 2), "k": inputs["k"].repeat_interleave(3, 2)}
    ref, ref_final = recurrent_ssd(**repeated, initial_state=h0, output_final_state=True)
    assert _relative(o, ref) < TOL[torch.float64] and _relative(final, ref_final) < TOL[torch.float64]
    with pytest.raises(ValueError, match="not a multiple"):
        chunk_ssd(**{**inputs, "v": inputs["v"][:, :, :5], "g": inputs["g"][:, :, :5]})


@pytest.mark.parametrize("op", sorted(OPS))
def test_bfloat16_autocast_keeps_the_op_in_float32(op):
    chunked, recurrent, kw = OPS[op]
    inputs, _ = _inputs(op, 40, torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        o, _ = chunked(**inputs, chunk_size=CHUNK, **kw)
    assert o.dtype == torch.float32
    assert _relative(o, recurrent(**inputs, **kw)[0]) < TOL[torch.float32]


@pytest.mark.parametrize("op", sorted(OPS))
def test_compiled_op_matches_eager_forward_and_backward(op):
    chunked, _, kw = OPS[op]
    inputs, h0 = _inputs(op, 40, torch.float32)
    torch._dynamo.reset()
    # SSD breaks the graph once, at its check of the chunks' decay (a host value), as GLA does
    fullgraph = op != "ssd"
    compiled = torch.compile(lambda **a: chunked(**a, chunk_size=CHUNK, **kw), backend="aot_eager", fullgraph=fullgraph)
    o, final, grads = _run(compiled, inputs, h0)
    ref_o, ref_final, ref_grads = _run(lambda **a: chunked(**a, chunk_size=CHUNK, **kw), inputs, h0)
    torch.testing.assert_close(o, ref_o, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(final, ref_final, rtol=1e-6, atol=1e-6)
    for key in grads:
        torch.testing.assert_close(grads[key], ref_grads[key], rtol=1e-5, atol=1e-6, msg=key)
    torch._dynamo.reset()


def test_flop_counter_sees_every_matmul_of_the_chunked_forms():
    """Forward FLOPs of each chunked form equal the count of its matmuls and (GDN) its triangular solve."""
    B, T, H, K, V, C = 2, 64, 2, 8, 6, 16  # B, K, V as _inputs makes them
    n = T // C
    ssd, _ = _inputs("ssd", T, torch.float32, groups=1, heads=H)
    # q k^T per group; (scores * L) v, chunk states, inter-chunk outputs per head
    ssd_flops = 2 * B * n * (C * C * K + H * (C * C * V + K * C * V + C * K * V))
    assert count_flops(lambda: chunk_ssd(**ssd, chunk_size=C)) == ssd_flops
    gdn, _ = _inputs("gdn", T, torch.float32, groups=H, heads=H)
    per_chunk = (
        C * C * K  # k k^T (the WY system)
        + C * C * (V + K) / 2  # the triangular solve for [u | w]: n^2 FLOPs per right-hand side
        + C * K * V * 2  # w S and k^T d in the state pass
        + C * K * V  # q S
        + C * C * K  # q k^T
        + C * C * V  # (q k^T * L) d
        + C * K * V  # w @ entry for d
    )
    assert count_flops(lambda: chunk_gated_delta_rule(**gdn, chunk_size=C)) == 2 * B * H * n * per_chunk
