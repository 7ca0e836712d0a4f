"""Checkpoints saved by the paper's official script load as they are (strict=True) and give
the official forward's outputs; our own state dicts round-trip through torch.save."""

from __future__ import annotations

import io
import math

import pytest
import torch
from zoo_reference import gam_forward, mamba_paper_forward, transformer_forward

from gam_bench.models import build

V, S, D, LAYERS, SLOTS, HEADS, K = 97, 64, 32, 2, 16, 4, 3


def _lm_shell(sd, g):
    """Keys of the official LM shell; head.weight IS token_embedding.weight, as saved."""
    sd["token_embedding.weight"] = sd["head.weight"] = torch.randn(V, D, generator=g)
    sd["pos_embedding.weight"] = torch.randn(S, D, generator=g)
    _ln(sd, "ln_f", g)


def _ln(sd, key, g):
    sd[f"{key}.weight"] = 1 + 0.1 * torch.randn(D, generator=g)
    sd[f"{key}.bias"] = 0.1 * torch.randn(D, generator=g)


def _linear(sd, key, n_in, n_out, g, bias=True):
    sd[f"{key}.weight"] = torch.randn(n_out, n_in, generator=g) / math.sqrt(n_in)
    if bias:
        sd[f"{key}.bias"] = 0.1 * torch.randn(n_out, generator=g)


def official_gam_state_dict(g):
    """What the official GAM_Model's state_dict() holds, written out by hand."""
    sd = {}
    _lm_shell(sd, g)
    for i in range(LAYERS):
        p = f"blocks.{i}"
        sd[f"{p}.causal_conv.weight"] = torch.randn(D, 1, K, generator=g) / math.sqrt(K)
        sd[f"{p}.causal_conv.bias"] = 0.1 * torch.randn(D, generator=g)
        sd[f"{p}.memory_bank"] = torch.randn(SLOTS, D, generator=g) / math.sqrt(D)
        _linear(sd, f"{p}.gate", D, 2 * D, g)
        _linear(sd, f"{p}.ffn.0", D, 4 * D, g)
        _linear(sd, f"{p}.ffn.2", 4 * D, D, g)
        _ln(sd, f"{p}.ln1", g)
        _ln(sd, f"{p}.ln2", g)
    return sd


def official_transformer_state_dict(g):
    """The official TransformerModel's state_dict(), including its causal-mask buffer."""
    sd = {}
    _lm_shell(sd, g)
    for i in range(LAYERS):
        p = f"blocks.{i}"
        _ln(sd, f"{p}.ln_1", g)
        _linear(sd, f"{p}.attn.c_attn", D, 3 * D, g)
        _linear(sd, f"{p}.attn.c_proj", D, D, g)
        sd[f"{p}.attn.bias"] = torch.tril(torch.ones(S, S)).view(1, 1, S, S)
        _ln(sd, f"{p}.ln_2", g)
        _linear(sd, f"{p}.ffn.0", D, 4 * D, g)
        _linear(sd, f"{p}.ffn.2", 4 * D, D, g)
    return sd


def official_mamba_state_dict(g, E=3 * D, N=4, R=None, d_conv=4):
    """The official MambaModel's state_dict(): mamba_ssm Mamba layers under blocks.{i}."""
    R = math.ceil(D / 16) if R is None else R
    sd = {}
    _lm_shell(sd, g)
    for i in range(LAYERS):
        p = f"blocks.{i}"
        _linear(sd, f"{p}.in_proj", D, 2 * E, g, bias=False)
        sd[f"{p}.conv1d.weight"] = torch.randn(E, 1, d_conv, generator=g) / 2
        sd[f"{p}.conv1d.bias"] = 0.1 * torch.randn(E, generator=g)
        _linear(sd, f"{p}.x_proj", E, R + 2 * N, g, bias=False)
        _linear(sd, f"{p}.dt_proj", R, E, g)
        sd[f"{p}.A_log"] = torch.log(torch.rand(E, N, generator=g) * 4 + 0.5)
        sd[f"{p}.D"] = torch.randn(E, generator=g)
        _linear(sd, f"{p}.out_proj", E, D, g, bias=False)
    return sd


def _official_transformer(idx, sd):
    return transformer_forward(idx, sd, LAYERS, HEADS)


CASES = {
    "gam": (official_gam_state_dict, lambda idx, sd: gam_forward(idx, sd, LAYERS)),
    "transformer": (official_transformer_state_dict, _official_transformer),
    "transformer-naive": (official_transformer_state_dict, _official_transformer),
    "mamba-paper": (official_mamba_state_dict, lambda idx, sd: mamba_paper_forward(idx, sd, LAYERS)),
}


def _saved(sd):
    """Through torch.save / torch.load, as a checkpoint file would go."""
    buffer = io.BytesIO()
    torch.save(sd, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("name", sorted(CASES))
def test_official_checkpoint_loads_strictly_and_matches_official_forward(name, tiny):
    make_sd, official_forward = CASES[name]
    sd = _saved(make_sd(torch.Generator().manual_seed(1)))
    model = build(name, **tiny(name)).eval()
    model.load_state_dict(sd, strict=True)
    assert model.head.weight is model.token_embedding.weight
    idx = torch.randint(0, V, (2, 40))
    with torch.no_grad():
        torch.testing.assert_close(model(idx), official_forward(idx, sd), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "name",
    [
        "gam",
        "gam-local-only",
        "transformer",
        "mamba",
        "mamba-paper",
        "mamba2",
        "gated-deltanet",
        "gated-deltanet-hybrid",
    ],
)
def test_state_dict_round_trip(name, tiny):
    source = build(name, **tiny(name)).eval()
    torch.manual_seed(123)
    target = build(name, **tiny(name)).eval()
    idx = torch.randint(0, V, (2, 30))
    with torch.no_grad():
        assert not torch.allclose(target(idx), source(idx))
        target.load_state_dict(_saved(source.state_dict()), strict=True)
        torch.testing.assert_close(target(idx), source(idx), rtol=0, atol=0)


def test_gam_state_dict_keys_are_the_official_ones(tiny):
    official = set(official_gam_state_dict(torch.Generator().manual_seed(0)))
    assert set(build("gam", **tiny("gam")).state_dict()) == official


@pytest.mark.parametrize(
    "name, absent",
    [
        ("gam-global-only", {"gate", "causal_conv"}),
        ("gam-local-only", {"gate", "memory_bank"}),
        ("gam-sum-fusion", {"gate"}),
    ],
)
def test_ablation_state_dicts_lack_the_removed_modules(name, absent, tiny):
    official = set(official_gam_state_dict(torch.Generator().manual_seed(0)))
    expected = {k for k in official if not (k.startswith("blocks.") and k.split(".")[2] in absent)}
    assert set(build(name, **tiny(name)).state_dict()) == expected


def test_standard_mamba_uses_mamba_ssm_key_layout(tiny):
    keys = set(build("mamba", **tiny("mamba")).state_dict())
    mixer = {
        "in_proj.weight",
        "conv1d.weight",
        "conv1d.bias",
        "x_proj.weight",
        "dt_proj.weight",
        "dt_proj.bias",
        "A_log",
        "D",
        "out_proj.weight",
    }
    expected = {"backbone.embedding.weight", "backbone.norm_f.weight", "lm_head.weight"}
    for i in range(LAYERS):
        expected.add(f"backbone.layers.{i}.norm.weight")
        expected |= {f"backbone.layers.{i}.mixer.{k}" for k in mixer}
    assert keys == expected
