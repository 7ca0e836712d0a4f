"""Incremental decoding (gam_bench.models.decode) for every registered model, ablations included:
prefill of T tokens then G single-token decodes equals the full forward on T+G tokens, at
lengths that are not multiples of any chunk size and across the selective scan's chunk
boundaries; state_bytes is the bytes of the state's tensors; decode is causal and its
state carries the context."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from gam_bench.errors import UserError
from gam_bench.models import available, build, build_block, cpu_scan, get_spec, selective_scan
from gam_bench.models.backends import mamba_ssm_available
from gam_bench.models.decode import (
    DecodeState,
    LMState,
    check_decode_capability,
    decode_backend,
    state_bytes,
    supports_decode,
)
from gam_bench.models.registry import ModelSpec

# The zoo's own models (test modules elsewhere register plugin models in the same process).
MODELS = [n for n in available() if get_spec(n).lm_cls.__module__.startswith("gam_bench.models.")]
BLOCK_MODELS = [n for n in MODELS if get_spec(n).block_cls is not None]
G = 6  # decoded tokens
# Context lengths: 1; 29 (+6 decoded crosses the CPU chunk size 32 while decoding); 37
# (the prefill itself spans a chunk boundary, with a short last chunk); none a multiple of 32.
LENGTHS = [1, 29, 37]
# Mamba's CPU scans; the fused one only where it builds (no compiler: the torch scan's tests still run).
CPU_BACKENDS = [
    "torch",
    pytest.param(
        "cpu-fused", marks=pytest.mark.skipif(not cpu_scan.available(), reason="the fused CPU scan cannot build here")
    ),
]
RTOL = 1e-5


def assert_relative(actual: torch.Tensor, expected: torch.Tensor, rtol: float = RTOL) -> None:
    """max |actual - expected| <= rtol * max |expected| (fp32 parity), and the same shape."""
    assert actual.shape == expected.shape
    err = (actual - expected).abs().max().item()
    scale = expected.abs().max().item()
    assert err <= rtol * max(scale, 1e-30), f"max abs error {err:.3g} vs scale {scale:.3g}"


def incremental(module, x: torch.Tensor, T: int) -> tuple[torch.Tensor, DecodeState]:
    """prefill(x[:, :T]) then decode one position at a time; outputs concatenated along dim 1."""
    out, state = module.prefill(x[:, :T])
    outs = [out]
    for t in range(T, x.shape[1]):
        step, state = module.decode(x[:, t : t + 1], state)
        assert step.shape[1] == 1
        outs.append(step)
    return torch.cat(outs, dim=1), state


def tensor_bytes(state: DecodeState) -> int:
    return sum(t.numel() * t.element_size() for t in state.tensors())


def expected_layer_bytes(name: str, config, batch: int, context: int) -> int:
    """The family's state bytes per layer (fp32), from its docstring's formula."""
    family, D = get_spec(name).family, config.d_model
    if family == "transformer":
        return 2 * batch * context * D * 4
    if family == "gam":
        return 0 if config.fusion == "global" else batch * (config.conv_kernel_size - 1) * D * 4
    if family == "hyena":  # the short conv's window (3D channels, 2 steps) and every long-conv input
        return batch * D * (3 * (config.short_filter_order - 1) + context) * 4
    if family == "swa":  # the ring KV cache of W slots and the int64 position
        return 2 * batch * config.window * D * 4 + 8
    if family in ("gla", "retnet"):  # the (B, H, K, V) float32 state; RetNet adds its int64 position
        key_dim, value_dim = int(D * config.expand_k), int(D * config.expand_v)
        return batch * key_dim * (value_dim // config.n_heads) * 4 + (8 if family == "retnet" else 0)
    if family == "gated-deltanet":  # the q, k, v conv windows and the (B, H, K, V) float32 state
        K, V = config.head_dim, int(config.head_dim * config.expand_v)
        return batch * config.num_heads * ((2 * K + V) * (config.conv_size - 1) + K * V) * 4
    if family == "mamba2":
        E = int(config.expand * D)
        conv_dim = E + 2 * config.ngroups * config.d_state
        return batch * (conv_dim * (config.d_conv - 1) + (E // config.headdim) * config.d_state * config.headdim) * 4
    E = config.expand * D
    return batch * E * ((config.d_conv - 1) + config.d_state) * 4


def expected_bytes(name: str, config, batch: int, context: int) -> int:
    """The LM's state bytes: per layer by family; the hybrid's layers are of two families."""
    if get_spec(name).family != "hybrid":
        return config.n_layers * expected_layer_bytes(name, config, batch, context)
    from gam_bench.models.hybrid import layer_kinds

    kinds = layer_kinds(config, config.n_layers)
    per_kind = {"attention": 2 * batch * context * config.d_model * 4}
    per_kind["deltanet"] = expected_layer_bytes("gated-deltanet", config, batch, context)
    assert set(kinds) == set(per_kind)  # the tiny hybrid has both kinds
    return sum(per_kind[kind] for kind in kinds)


@pytest.mark.parametrize("T", LENGTHS)
@pytest.mark.parametrize("name", MODELS)
def test_lm_prefill_then_decode_equals_forward(name, T, tiny):
    model = build(name, **tiny(name)).eval()
    idx = torch.randint(0, 97, (2, T + G))
    with torch.no_grad():
        full = model(idx)  # (B, T+G, V)
        inc, state = incremental(model, idx, T)
    assert_relative(inc, full)
    assert isinstance(state, LMState) and state.position == T + G
    assert decode_backend(model)


@pytest.mark.parametrize("T", LENGTHS)
@pytest.mark.parametrize("name", BLOCK_MODELS)
def test_block_prefill_then_decode_equals_forward(name, T, tiny):
    block = build_block(name, **tiny(name)).eval()
    x = torch.randn(2, T + G, 32)
    with torch.no_grad():
        full = block(x)
        inc, _ = incremental(block, x, T)
    assert_relative(inc, full)


@pytest.mark.parametrize("name", ["gam", "gam-global-only", "gam-sum-fusion"])
def test_gam_reference_memory_read_decodes_too(name, tiny):
    model = build(name, **tiny(name, impl="reference")).eval()
    assert model.backend == "reference"
    idx = torch.randint(0, 97, (2, 20))
    with torch.no_grad():
        assert_relative(incremental(model, idx, 13)[0], model(idx))


@pytest.mark.parametrize("k", [1, 2, 5])
def test_gam_any_kernel_size(k, tiny):
    model = build("gam", **tiny("gam", conv_kernel_size=k)).eval()
    idx = torch.randint(0, 97, (2, 12))
    with torch.no_grad():
        inc, state = incremental(model, idx, 3)  # T=3 < k-1 for k=5: a zero-padded window
    assert_relative(inc, model(idx))
    assert state.layers[0].window.shape == (2, k - 1, 32)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("chunk", [1, 4, 7])
@pytest.mark.parametrize("name", ["mamba", "mamba-paper"])
def test_mamba_across_many_chunk_boundaries(name, chunk, backend, tiny, monkeypatch):
    """The prefill's final SSM state comes out of the chunked scan right for any chunking."""
    monkeypatch.setitem(selective_scan.CHUNK_SIZE, "cpu", chunk)
    monkeypatch.setattr(cpu_scan, "CHUNK", chunk)
    model = build(name, **tiny(name, backend=backend)).eval()
    idx = torch.randint(0, 97, (2, 30))
    with torch.no_grad():
        for T in (chunk, 2 * chunk + 1, 23):
            assert_relative(incremental(model, idx, T)[0], model(idx))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("name", ["mamba", "mamba-paper"])
def test_mamba_prefill_state_equals_stepped_state(name, backend, tiny):
    """prefill(T) gives the state that prefill(T-1) and one decode give (the scan's last state)."""
    model = build(name, **tiny(name, backend=backend)).eval()
    idx = torch.randint(0, 97, (2, 34))  # 34: past the CPU chunk size 32
    with torch.no_grad():
        _, direct = model.prefill(idx)
        _, stepped = incremental(model, idx, 33)
    for a, b in zip(direct.tensors(), stepped.tensors()):
        assert_relative(a, b)


@pytest.mark.parametrize("name", MODELS)
def test_state_bytes_are_the_tensors_bytes(name, tiny):
    config_overrides = tiny(name)
    model = build(name, **config_overrides).eval()
    config = model.config
    T, B = 11, 3
    idx = torch.randint(0, 97, (B, T + G))
    with torch.no_grad():
        _, state = model.prefill(idx[:, :T])
        at_prefill = state_bytes(state)
        assert at_prefill == tensor_bytes(state)
        assert at_prefill == expected_bytes(name, config, B, T)
        _, state = incremental(model, idx, T)
    assert state_bytes(state) == tensor_bytes(state)
    assert state_bytes(state) == expected_bytes(name, config, B, T + G)


def test_state_bytes_counts_shared_storage_once():
    @dataclasses.dataclass
    class Two(DecodeState):
        a: torch.Tensor
        b: list

    base = torch.zeros(4, 8)
    assert state_bytes(Two(base, [base[1:], torch.zeros(3, dtype=torch.float16)])) == 4 * 8 * 4 + 3 * 2


@pytest.mark.parametrize("name", MODELS)
def test_decode_is_causal_and_carries_the_context(name, tiny):
    model = build(name, **tiny(name)).eval()
    T = 9
    idx = torch.randint(0, 97, (2, T + G))
    with torch.no_grad():
        base, _ = incremental(model, idx, T)
        future = idx.clone()
        future[:, T + 3 :] = (future[:, T + 3 :] + 1) % 97  # change decoded tokens from step 3 on
        out, _ = incremental(model, future, T)
        torch.testing.assert_close(out[:, : T + 3], base[:, : T + 3], rtol=0, atol=0)
        assert not torch.allclose(out[:, T + 3 :], base[:, T + 3 :])
        past = idx.clone()
        past[:, T - 1] = (past[:, T - 1] + 1) % 97  # change the last context token
        out, _ = incremental(model, past, T)
    carries = get_spec(name).defaults.get("fusion") != "global"  # memory-only GAM has no state
    assert carries == (not torch.allclose(out[:, T:], base[:, T:]))


@pytest.mark.parametrize("name", ["transformer", "transformer-naive", "gam", "mamba-paper"])
def test_decode_past_max_seq_len_is_an_error(name, tiny):
    model = build(name, **tiny(name, max_seq_len=8)).eval()
    with torch.no_grad():
        _, state = model.prefill(torch.zeros(1, 8, dtype=torch.long))
        with pytest.raises(ValueError, match="max_seq_len=8"):
            model.decode(torch.zeros(1, 1, dtype=torch.long), state)


@pytest.mark.parametrize("name", ["transformer", "gam", "mamba"])
def test_decode_takes_one_token(name, tiny):
    model = build(name, **tiny(name)).eval()
    with torch.no_grad():
        _, state = model.prefill(torch.zeros(1, 4, dtype=torch.long))
        with pytest.raises(ValueError, match="one token per call"):
            model.decode(torch.zeros(1, 2, dtype=torch.long), state)


@pytest.mark.parametrize("name", ["transformer", "gam", "mamba"])
def test_prefill_last_only(name, tiny):
    model = build(name, **tiny(name)).eval()
    idx = torch.randint(0, 97, (2, 10))
    with torch.no_grad():
        last, _ = model.prefill(idx, last_only=True)
        assert_relative(last, model(idx)[:, -1:])


@pytest.mark.parametrize("name", MODELS)
def test_every_builtin_declares_the_capability(name):
    spec = get_spec(name)
    assert supports_decode(spec, "lm")
    assert supports_decode(spec, "block") == (spec.block_cls is not None)
    check_decode_capability(name, "lm")


def test_a_model_without_the_capability_is_a_load_time_error(monkeypatch):
    class Plain(torch.nn.Module):
        def forward(self, idx):
            return idx

    spec = ModelSpec(name="plain", family="plugin", config_cls=object, lm_cls=Plain, block_cls=Plain)
    assert not supports_decode(spec, "lm") and not supports_decode(spec, "block")
    assert not supports_decode(Plain()) and not supports_decode(None)
    monkeypatch.setattr("gam_bench.models.registry.get_spec", lambda name: spec)
    with pytest.raises(UserError, match=r"suites/x.yaml: models: model 'plain' cannot run task 'decode' at level 'lm'"):
        check_decode_capability("plain", "lm", where="suites/x.yaml: models")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["mamba", "mamba-paper"])
def test_mamba_ssm_decode_equals_torch_decode(name, tiny):
    """selective_state_update (+ causal_conv1d_update) against the torch step, same weights."""
    if not mamba_ssm_available():
        pytest.skip("mamba-ssm is not installed")
    torch_model = build(name, **tiny(name, backend="torch")).cuda().eval()
    kernel_model = build(name, **tiny(name, backend="mamba-ssm")).cuda().eval()
    kernel_model.load_state_dict(torch_model.state_dict())
    assert kernel_model.decode_backend.startswith("mamba-ssm-step")
    idx = torch.randint(0, 97, (2, 40), device="cuda")
    with torch.no_grad():
        ref, _ = incremental(torch_model, idx, 33)
        out, _ = incremental(kernel_model, idx, 33)
        full = kernel_model(idx)
    assert_relative(out, ref, rtol=1e-3)  # kernels reorder float32 sums
    assert_relative(out, full, rtol=1e-3)
    assert math.isfinite(out.abs().max().item())
