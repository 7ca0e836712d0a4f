"""The O(N) field's families at the model level (issue #23): each block with its chunked op equals
the same block with the op's step-by-step recurrent reference, forward and backward; compiled
blocks equal eager ones; state-dict keys follow the reference implementations; backends are
never a silent fallback, and the kernel branches run on CPU through fakes of the kernels."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from gam_bench.errors import UserError
from gam_bench.models import backends, build, build_block, cpu_scan
from gam_bench.models.ops import gated_delta_rule, ssd

# model -> (module whose chunked op is swapped, chunked op name, its recurrent reference)
SWAPS = {
    "mamba2": ("gam_bench.models.mamba2", "chunk_ssd", ssd.recurrent_ssd),
    "gated-deltanet": (
        "gam_bench.models.gated_deltanet",
        "chunk_gated_delta_rule",
        gated_delta_rule.recurrent_gated_delta_rule,
    ),
    "gated-deltanet-hybrid": (
        "gam_bench.models.gated_deltanet",
        "chunk_gated_delta_rule",
        gated_delta_rule.recurrent_gated_delta_rule,
    ),
}


def _grads(block, x):
    x = x.clone().requires_grad_()
    y = block(x)
    y.square().mean().backward()
    return y, [x.grad, *(p.grad for p in block.parameters())]


@pytest.mark.parametrize("T", [7, 64, 75])  # the torch ops' chunk is 64
@pytest.mark.parametrize("name", sorted(SWAPS))
def test_block_chunked_equals_recurrent_forward_and_backward(name, T, tiny, monkeypatch):
    module, attr, reference = SWAPS[name]
    block = build_block(name, **tiny(name)).double()
    x = torch.randn(2, T, 32, dtype=torch.float64)
    y, grads = _grads(block, x)
    block.zero_grad()
    calls = []

    def recurrent(*args, chunk_size=None, **kw):
        calls.append(args[0].shape)
        return reference(*args, **kw)

    monkeypatch.setattr(f"{module}.{attr}", recurrent)
    y_ref, grads_ref = _grads(block, x)
    assert calls  # the block ran the reference
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    for (key, _), a, b in zip([("x", None), *block.named_parameters()], grads, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10, msg=key)


@pytest.mark.parametrize("name", sorted(SWAPS))
def test_compiled_block_matches_eager_forward_and_backward(name, tiny):
    block = build_block(name, **tiny(name))
    x = torch.randn(2, 40, 32)
    y, grads = _grads(block, x)
    block.zero_grad()
    torch._dynamo.reset()
    compiled = torch.compile(block, backend="aot_eager")
    y_c, grads_c = _grads(compiled, x)
    torch._dynamo.reset()
    torch.testing.assert_close(y_c, y, rtol=1e-5, atol=1e-6)
    for a, b in zip(grads_c, grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_mamba2_keys_follow_mamba_ssm(tiny):
    keys = set(build("mamba2", **tiny("mamba2")).state_dict())
    mixer = [
        "in_proj.weight",
        "conv1d.weight",
        "conv1d.bias",
        "dt_bias",
        "A_log",
        "D",
        "norm.weight",
        "out_proj.weight",
    ]
    expected = {"backbone.embedding.weight", "backbone.norm_f.weight", "lm_head.weight"}
    for i in range(2):
        expected |= {f"backbone.layers.{i}.norm.weight"} | {f"backbone.layers.{i}.mixer.{k}" for k in mixer}
    assert keys == expected


def test_mamba2_shapes_and_init_follow_mamba_ssm():
    mixer = build_block("mamba2").mixer  # the paper's d_model 512
    E, N, H = int(3.5 * 512), 128, int(3.5 * 512) // 32
    assert mixer.in_proj.weight.shape == (2 * E + 2 * N + H, 512) and mixer.in_proj.bias is None
    assert mixer.conv1d.weight.shape == (E + 2 * N, 1, 4) and mixer.conv1d.bias is not None
    assert mixer.A_log.shape == mixer.D.shape == mixer.dt_bias.shape == (H,)
    assert 1 <= mixer.A_log.exp().min() and mixer.A_log.exp().max() <= 16
    dt = torch.nn.functional.softplus(mixer.dt_bias)
    assert dt.min() >= 1e-3 * 0.999 and dt.max() <= 0.1 * 1.001
    assert mixer.norm.weight.shape == (E,) and mixer.out_proj.bias is None


def test_mamba2_heads_must_divide_the_inner_width():
    with pytest.raises(UserError, match="not a multiple of headdim=64"):
        build_block("mamba2", d_model=64, headdim=64)  # d_inner 224


GDN_MIXER = [
    "q_proj.weight",
    "k_proj.weight",
    "v_proj.weight",
    "a_proj.weight",
    "b_proj.weight",
    "A_log",
    "dt_bias",
    "q_conv1d.weight",
    "k_conv1d.weight",
    "v_conv1d.weight",
    "g_proj.weight",
    "o_norm.weight",
    "o_proj.weight",
]
SHARED_BLOCK = [
    "ln_1.weight",
    "ln_1.bias",
    "ln_2.weight",
    "ln_2.bias",
    "ffn.0.weight",
    "ffn.0.bias",
    "ffn.2.weight",
    "ffn.2.bias",
]
ATTENTION = ["attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias"]
SHELL = {"token_embedding.weight", "pos_embedding.weight", "ln_f.weight", "ln_f.bias", "head.weight"}


def test_gated_deltanet_keys_follow_fla_in_the_shared_block(tiny):
    keys = set(build("gated-deltanet", **tiny("gated-deltanet")).state_dict())
    expected = set(SHELL)
    for i in range(2):
        expected |= {f"blocks.{i}.attn.{k}" for k in GDN_MIXER} | {f"blocks.{i}.{k}" for k in SHARED_BLOCK}
    assert keys == expected


def test_hybrid_has_one_attention_layer_in_every_four(tiny):
    model = build("gated-deltanet-hybrid", **tiny("gated-deltanet-hybrid", attn_every=4, n_layers=8))
    keys = set(model.state_dict())
    attention = {i for i in range(8) if f"blocks.{i}.attn.c_attn.weight" in keys}
    assert attention == {3, 7}
    for i in range(8):
        mixer = ATTENTION if i in attention else [f"attn.{k}" for k in GDN_MIXER]
        assert {k for k in keys if k.startswith(f"blocks.{i}.")} == {f"blocks.{i}.{k}" for k in mixer + SHARED_BLOCK}
    assert model.backend == ("cpu-conv+chunked" if cpu_scan.available() else "torch-chunked") + "+sdpa"
    block = build_block("gated-deltanet-hybrid", **tiny("gated-deltanet-hybrid", attn_every=4))
    assert [type(layer).__name__ for layer in block.layers] == ["GatedDeltaNetBlock"] * 3 + ["TransformerBlock"]
    with pytest.raises(UserError, match="attn_every must be >= 1"):
        build_block("gated-deltanet-hybrid", **tiny("gated-deltanet-hybrid", attn_every=0))


def test_gated_deltanet_shapes_and_init_follow_fla():
    mixer = build_block("gated-deltanet").attn  # the paper's d_model 512
    H, K, V = 3, 64, 128
    assert mixer.q_proj.weight.shape == mixer.k_proj.weight.shape == (H * K, 512)
    assert mixer.v_proj.weight.shape == mixer.g_proj.weight.shape == (H * V, 512)
    assert mixer.a_proj.weight.shape == mixer.b_proj.weight.shape == (H, 512)
    assert mixer.q_conv1d.weight.shape == (H * K, 1, 4) and mixer.q_conv1d.bias is None
    assert mixer.v_conv1d.weight.shape == (H * V, 1, 4) and mixer.o_norm.weight.shape == (V,)
    assert mixer.A_log.exp().max() <= 16 and mixer.o_proj.weight.shape == (512, H * V)
    dt = torch.nn.functional.softplus(mixer.dt_bias)
    assert dt.min() >= 1e-3 * 0.999 and dt.max() <= 0.1 * 1.001


# --- backends: reasons, no silent fallback, kernel branches through fakes ----------------------


def _fake_kernel_module(monkeypatch, name: str, **functions) -> None:
    """Install module `name` (and its parents) with `functions`, so imports of the kernel succeed."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        monkeypatch.setitem(sys.modules, ".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
    for key, fn in functions.items():
        setattr(sys.modules[name], key, fn)
    backends.import_error.cache_clear()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


@pytest.fixture(autouse=True)
def _fresh_import_cache():
    backends.import_error.cache_clear()
    yield
    backends.import_error.cache_clear()


def test_mamba2_records_why_the_kernel_does_not_run(tiny):
    block = build_block("mamba2", **tiny("mamba2"))
    if cpu_scan.available():
        assert block.backend == "cpu-conv+chunked-ssd"
        reason = "cpu-conv+chunked-ssd: inputs on cpu (mamba-ssm kernels are CUDA-only)"
    else:
        assert block.backend == "torch-chunked-ssd"
        reason = (
            "torch-chunked-ssd: inputs on cpu (mamba-ssm kernels are CUDA-only), "
            f"fused CPU conv unavailable ({cpu_scan.unavailable_reason()})"
        )
    assert backends.backend_reason(block) == reason
    forced = build_block("mamba2", **tiny("mamba2", backend="torch"))
    assert backends.backend_reason(forced) == "torch-chunked-ssd: backend 'torch' requested"
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="backend='mamba-ssm' is not available.*no CUDA device"):
            build_block("mamba2", **tiny("mamba2", backend="mamba-ssm"))


# model -> (its backend name with the fused CPU conv, without it)
CPU_CONV = {
    "mamba2": ("cpu-conv+chunked-ssd", "torch-chunked-ssd"),
    "gated-deltanet": ("cpu-conv+chunked", "torch-chunked"),
}


@pytest.mark.parametrize("name", sorted(CPU_CONV))
def test_without_the_fused_cpu_conv_the_reason_says_why(name, tiny, monkeypatch):
    """No C++ compiler: auto runs the torch conv and the reason names the missing kernel;
    asking for cpu-fused is a one-line UserError."""
    monkeypatch.setitem(cpu_scan._REASON, "reason", "no C++ compiler found (test)")
    block = build_block(name, **tiny(name))
    assert block.backend == CPU_CONV[name][1]
    reason = backends.backend_reason(block)
    assert reason.startswith(f"{CPU_CONV[name][1]}: inputs on cpu")
    assert reason.endswith("fused CPU conv unavailable (no C++ compiler found (test))")
    with pytest.raises(UserError, match="backend='cpu-fused' is not available.*no C\\+\\+ compiler"):
        build_block(name, **tiny(name, backend="cpu-fused"))


@pytest.mark.skipif(not cpu_scan.available(), reason="the fused CPU conv does not build here")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", [*sorted(CPU_CONV), "gated-deltanet-hybrid"])
def test_cpu_fused_conv_equals_the_torch_conv(name, dtype, tiny):
    """backend='cpu-fused' (the fused conv + SiLU) equals backend='torch', forward, backward and prefill."""
    torch_block = build_block(name, **tiny(name, backend="torch")).to(dtype)
    fused = build_block(name, **tiny(name, backend="cpu-fused")).to(dtype)
    fused.load_state_dict(torch_block.state_dict())
    assert fused.backend.startswith("cpu-conv+chunked") and torch_block.backend.startswith("torch-chunked")
    x = torch.randn(2, 70, 32, dtype=dtype)
    y, grads = _grads(fused, x)
    y_ref, grads_ref = _grads(torch_block, x)
    tol = {"rtol": 1e-10, "atol": 1e-10} if dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-5}
    torch.testing.assert_close(y, y_ref, **tol)
    for (key, _), a, b in zip([("x", None), *fused.named_parameters()], grads, grads_ref):
        torch.testing.assert_close(a, b, **tol, msg=key)
    with torch.no_grad():
        for a, b in zip(fused.prefill(x)[1].tensors(), torch_block.prefill(x)[1].tensors()):
            torch.testing.assert_close(a, b, **tol)


def _fake_mamba_chunk_scan_combined(calls):
    """mamba_ssm's contract: x (B, L, H, P), dt (B, L, H) before bias/softplus, A (H,), B, C
    (B, L, G, N), D (H,); final states (B, H, P, N). Computed with the recurrent reference."""

    def fake(x, dt, A, B, C, chunk_size, D=None, dt_bias=None, dt_softplus=False, return_final_states=False):
        calls.append(chunk_size)
        dt = torch.nn.functional.softplus(dt + dt_bias) if dt_softplus else dt + dt_bias
        y, final = ssd.recurrent_ssd(C, B, x * dt.unsqueeze(-1), A * dt, 1.0, None, True)
        y = y + x * D.unsqueeze(-1)
        return (y, final.transpose(-1, -2)) if return_final_states else y

    return fake


def test_mamba2_kernel_branch_through_a_fake_kernel(tiny, monkeypatch):
    """backend='mamba-ssm' passes mamba_ssm's argument layout and reads its state layout back."""
    calls = []
    torch_block = build_block("mamba2", **tiny("mamba2", backend="torch")).eval()
    _fake_kernel_module(
        monkeypatch,
        "mamba_ssm.ops.triton.ssd_combined",
        mamba_chunk_scan_combined=_fake_mamba_chunk_scan_combined(calls),
    )
    kernel_block = build_block("mamba2", **tiny("mamba2", backend="mamba-ssm")).eval()
    kernel_block.load_state_dict(torch_block.state_dict())
    monkeypatch.setattr(kernel_block.mixer, "_resolve", lambda device: "mamba-ssm")
    assert kernel_block.backend == backends.MAMBA_SSM_SSD
    assert kernel_block.decode_backend == "torch-step"  # decode runs the torch step, and says so
    x = torch.randn(2, 30, 32)
    with torch.no_grad():
        torch.testing.assert_close(kernel_block(x), torch_block(x), rtol=1e-5, atol=1e-6)
        out, state = kernel_block.prefill(x)
        ref_out, ref_state = torch_block.prefill(x)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-6)
    for a, b in zip(state.tensors(), ref_state.tensors()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert calls == [256, 256]


def test_gated_deltanet_records_why_the_kernel_does_not_run(tiny):
    for name in ("gated-deltanet", "gated-deltanet-hybrid"):
        model = build(name, **tiny(name))
        if cpu_scan.available():
            assert model.backend.startswith("cpu-conv+chunked")
            assert backends.backend_reason(model) == "cpu-conv+chunked: inputs on cpu (fla kernels are CUDA-only)"
        else:
            assert model.backend.startswith("torch-chunked")
            assert backends.backend_reason(model).startswith("torch-chunked: inputs on cpu (fla kernels are CUDA-only)")
    forced = build_block("gated-deltanet", **tiny("gated-deltanet", backend="torch"))
    assert backends.backend_reason(forced) == "torch-chunked: backend 'torch' requested"
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="backend='fla' is not available.*no CUDA device"):
            build_block("gated-deltanet", **tiny("gated-deltanet", backend="fla"))


def test_gated_deltanet_kernel_branch_through_a_fake_kernel(tiny, monkeypatch):
    """backend='fla' calls fla's chunk_gated_delta_rule with fla's keyword arguments."""
    calls = []

    def fake(q, k, v, g, beta, scale=None, initial_state=None, output_final_state=False, use_qk_l2norm_in_kernel=False):
        calls.append((q.shape, use_qk_l2norm_in_kernel, output_final_state))
        return gated_delta_rule.recurrent_gated_delta_rule(
            q, k, v, g, beta, scale, initial_state, output_final_state, use_qk_l2norm_in_kernel
        )

    torch_block = build_block("gated-deltanet", **tiny("gated-deltanet", backend="torch")).eval()
    _fake_kernel_module(monkeypatch, "fla.ops.gated_delta_rule", chunk_gated_delta_rule=fake)
    kernel_block = build_block("gated-deltanet", **tiny("gated-deltanet", backend="fla")).eval()
    kernel_block.load_state_dict(torch_block.state_dict())
    monkeypatch.setattr(kernel_block.attn, "_resolve", lambda device: "fla")
    assert kernel_block.backend == "fla-chunk"
    assert kernel_block.decode_backend == "torch-step"  # decode runs the torch step, and says so
    x = torch.randn(2, 30, 32)
    with torch.no_grad():
        torch.testing.assert_close(kernel_block(x), torch_block(x), rtol=1e-5, atol=1e-6)
        out, state = kernel_block.prefill(x)
        ref_out, ref_state = torch_block.prefill(x)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-6)
    for a, b in zip(state.tensors(), ref_state.tensors()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert calls == [((2, 30, 2, 8), True, False), ((2, 30, 2, 8), True, True)]


@pytest.mark.skipif(not cpu_scan.available(), reason="the fused CPU conv does not build here")
@pytest.mark.parametrize("name", sorted(CPU_CONV))
def test_cpu_fused_conv_counts_the_same_flops(name, tiny):
    """The fused conv's registered formula counts what nn.Conv1d counts: the two backends' rows agree."""
    from gam_bench.measure.flops import count_flops, counts_every_kernel

    x = torch.randn(1, 70, 32)
    counts = {}
    for backend in ("torch", "cpu-fused"):
        block = build_block(name, **tiny(name, backend=backend))
        assert counts_every_kernel(block.backend)
        counts[backend] = count_flops(lambda block=block: block(x.requires_grad_()).sum().backward())
    assert counts["cpu-fused"] == counts["torch"] > 0


@pytest.mark.skipif(not cpu_scan.available(), reason="the fused CPU conv does not build here")
@pytest.mark.parametrize("name", sorted(CPU_CONV))
def test_cpu_fused_refuses_inputs_off_the_cpu(name, tiny):
    """backend='cpu-fused' on non-CPU inputs (here: meta tensors) is an error, never a silent torch conv."""
    block = build_block(name, **tiny(name, backend="cpu-fused")).to("meta")
    with pytest.raises(UserError, match="backend='cpu-fused' needs CPU inputs, got meta"):
        block(torch.empty(1, 8, 32, device="meta"))


@pytest.mark.skipif(not cpu_scan.available(), reason="the fused CPU kernels do not build here")
@pytest.mark.parametrize("name", ["mamba", "mamba2", "gated-deltanet", "gated-deltanet-hybrid", "gam"])
def test_a_counted_row_names_the_fused_kernels_build_when_the_model_runs_them(name, tiny):
    from gam_bench.tasks.throughput.instructions import counted_build

    block = build_block(name, **tiny(name))
    expected = cpu_scan.build_label() if name != "gam" else None
    assert counted_build(block) == expected
