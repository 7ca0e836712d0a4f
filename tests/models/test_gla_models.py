"""GLA and RetNet as models: the block's chunked op against the recurrence (forward and
backward), flash-linear-attention's key names, parameter counts at the paper's config, the
`fla` backend through a fake module on the CPU (never a silent fallback), compile parity."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from gam_bench.errors import UserError
from gam_bench.models import backends, build, build_block, linear_attention
from gam_bench.models.ops import gla as ops

FAMILIES = ["gla", "retnet"]
TINY = {"d_model": 32, "max_seq_len": 128, "dropout": 0.0, "n_layers": 2, "vocab_size": 97}


def _n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _recurrent_ops(monkeypatch):
    """Send both families' torch op through the step-by-step twins."""
    monkeypatch.setattr(
        "gam_bench.models.gla.chunk_gla", lambda q, k, v, g, chunk_size, **kw: ops.recurrent_gla(q, k, v, g, **kw)
    )
    monkeypatch.setattr(
        "gam_bench.models.retnet.chunk_simple_gla",
        lambda q, k, v, g, chunk_size, **kw: ops.recurrent_simple_gla(q, k, v, g, **kw),
    )


@pytest.mark.parametrize("T", [5, 16, 45])
@pytest.mark.parametrize("name", FAMILIES)
def test_block_chunked_equals_recurrent_forward_and_backward(name, T, monkeypatch):
    block = build_block(name, **TINY, chunk_size=16).eval()
    assert block.backend == "torch-chunked"
    x = torch.randn(2, T, 32, requires_grad=True)
    fast = block(x)
    g_fast = torch.autograd.grad(fast.square().sum(), [x, *block.parameters()])
    _recurrent_ops(monkeypatch)
    slow = block(x)
    g_slow = torch.autograd.grad(slow.square().sum(), [x, *block.parameters()])
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    for (key, _), a, b in zip([("x", None), *block.named_parameters()], g_fast, g_slow):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4, msg=key)


def test_gla_keys_are_flas():
    keys = set(build_block("gla", **TINY).attn.state_dict())
    assert keys == {
        "q_proj.weight",
        "k_proj.weight",
        "v_proj.weight",
        "g_proj.weight",
        "gk_proj.0.weight",
        "gk_proj.1.weight",
        "gk_proj.1.bias",
        "o_proj.weight",
        "g_norm.weight",
    }


def test_retnet_keys_are_flas_and_the_fused_norm_key_loads():
    attn = build_block("retnet", **TINY).attn
    state = attn.state_dict()
    names = ("q_proj", "k_proj", "v_proj", "g_proj", "o_proj", "g_norm")
    assert set(state) == {f"{name}.weight" for name in names}
    fused = {("g_norm_swish_gate.weight" if k == "g_norm.weight" else k): v for k, v in state.items()}
    fused["g_norm_swish_gate.weight"] = torch.full_like(state["g_norm.weight"], 3.0)
    attn.load_state_dict(fused)
    assert torch.equal(attn.g_norm.weight, torch.full_like(attn.g_norm.weight, 3.0))


def test_shapes_follow_fla_defaults():
    gla = build_block("gla").attn  # d 512: key dim 256, value dim 512, 4 heads, gate rank 16
    assert (gla.q_proj.out_features, gla.v_proj.out_features, gla.n_heads) == (256, 512, 4)
    assert (gla.gk_proj[0].out_features, gla.gk_proj[1].out_features) == (16, 256)
    ret = build_block("retnet").attn  # key dim 512, value dim 1024, 8 heads
    assert (ret.q_proj.out_features, ret.v_proj.out_features, ret.n_heads) == (512, 1024, 8)


# The paper's configuration (vocab 10k, T 256, d 512, 6 layers): GAM is 22.60M.
FIELD_PARAMS = {"gla": 24.23, "retnet": 24.15}


@pytest.mark.parametrize("name", sorted(FIELD_PARAMS))
def test_param_count_at_the_paper_config_is_within_10_percent_of_gam(name):
    count, gam = _n_params(build(name)) / 1e6, _n_params(build("gam")) / 1e6
    assert abs(count - FIELD_PARAMS[name]) < 0.005
    assert abs(count / gam - 1) < 0.10


def test_retnet_knob_is_the_ffn_width():
    """RetNet's FFN is 2d (its paper's); with the paper's 4d FFN it would be 35% over GAM."""
    assert build_block("retnet").ffn[0].out_features == 2 * 512
    assert _n_params(build("retnet", ffn_mult=4)) / _n_params(build("gam")) > 1.3


# --- the fla backend, through a fake fla on the CPU -----------------------------------------


@pytest.fixture
def fake_fla(monkeypatch):
    """A fake `fla` whose chunk_gla / chunk_simple_gla record their calls and run the torch op;
    a "CUDA" device for the kernels' device check."""
    calls = []

    def recorder(fn):
        def op(q, k, v, g, scale=None, initial_state=None, output_final_state=False):
            calls.append(fn.__name__)
            return fn(q, k, v, g, scale, initial_state, output_final_state)

        return op

    modules = {
        "fla": types.ModuleType("fla"),
        "fla.ops": types.ModuleType("fla.ops"),
        "fla.ops.gla": types.SimpleNamespace(chunk_gla=recorder(ops.chunk_gla)),
        "fla.ops.simple_gla": types.SimpleNamespace(chunk_simple_gla=recorder(ops.chunk_simple_gla)),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(linear_attention, "kernel_device", lambda device: True)
    backends.import_error.cache_clear()
    yield calls
    backends.import_error.cache_clear()


@pytest.mark.parametrize("name, op", [("gla", "chunk_gla"), ("retnet", "chunk_simple_gla")])
def test_fla_backend_runs_flas_op_with_the_same_arguments(name, op, fake_fla):
    torch_block = build_block(name, **TINY, backend="torch").eval()
    fla_block = build_block(name, **TINY, backend="auto").eval()
    fla_block.load_state_dict(torch_block.state_dict())
    assert fla_block.backend == "fla-chunk" and fla_block.attn.backend_reason == "fla-chunk"
    assert torch_block.backend == "torch-chunked" and "requested" in torch_block.attn.backend_reason
    x = torch.randn(2, 21, 32)
    with torch.no_grad():
        torch.testing.assert_close(fla_block(x), torch_block(x))
        out, state = fla_block.prefill(x)
    assert fake_fla == [op, op]
    assert state.state.shape == (2, fla_block.attn.n_heads, fla_block.attn.head_k_dim, fla_block.attn.head_v_dim)


def test_broken_fla_is_a_recorded_reason_and_an_error_when_asked_for(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(linear_attention, "kernel_device", lambda device: True)
    monkeypatch.setitem(sys.modules, "fla", None)  # import fla -> ImportError
    backends.import_error.cache_clear()
    try:
        block = build_block("gla", **TINY, backend="auto")
        assert block.backend == "torch-chunked"
        assert block.attn.backend_reason.startswith("torch-chunked: fla does not import (ModuleNotFoundError")
        with pytest.raises(UserError, match="backend='fla' is not available"):
            build_block("gla", **TINY, backend="fla")
    finally:
        backends.import_error.cache_clear()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_cpu_reasons():
    reason = build_block("retnet", **TINY).attn.backend_reason
    assert reason == "torch-chunked: inputs on cpu (fla kernels are CUDA-only)"
    with pytest.raises(UserError, match="backend='fla'"):
        build("gla", **TINY, backend="fla")
    assert backends.backend_reason(build("gla", **TINY)).startswith("torch-chunked")


# --- compile ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FAMILIES)
def test_compiled_block_matches_eager_forward_and_backward(name):
    torch._dynamo.reset()
    block = build_block(name, **TINY, chunk_size=8).eval()
    x = torch.randn(1, 20, 32, requires_grad=True)
    eager = block(x)
    g_eager = torch.autograd.grad(eager.sum(), x)[0]
    compiled = torch.compile(block, backend="aot_eager")
    out = compiled(x)
    g_out = torch.autograd.grad(out.sum(), x)[0]
    torch.testing.assert_close(out, eager, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g_out, g_eager, rtol=1e-5, atol=1e-5)
    torch._dynamo.reset()
