"""Parameter counts at the paper's config (vocab 10k, T 256, d 512, 6 layers) match the paper."""

from __future__ import annotations

import math

import pytest
import torch

from gam_bench.models import build, build_block, make_config


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # shared (tied) tensors counted once


# The paper's figures, in millions of parameters.
PAPER = {
    "gam": 22.6,
    "transformer": 24.2,
    "transformer-naive": 24.2,
    "mamba-paper": 20.5,
    "gam-global-only": 19.4,
    "gam-sum-fusion": 19.4,
    "gam-local-only": 17.9,
}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_param_count_matches_paper(name):
    model = build(name)  # defaults are the paper's config
    assert abs(n_params(model) / 1e6 - PAPER[name]) < 0.05


GAM_PARAMS = 22.6e6
# The O(N) field at the paper's config (d 512, 6 layers, vocab 10k), pinned: each within 10% of
# GAM's 22.6M, as the paper's own baselines are. The knob moved from the reference's defaults:
FIELD = {
    "mamba2": 22_670_320,  # expand 2 -> 3.5, headdim 64 -> 32 (mamba_ssm's Mamba2 defaults otherwise)
    "gated-deltanet": 22_618_916,  # heads: 3 of width 64 (fla: 6 of 256 at width 2048); expand_v 2, conv 4 as fla
    "gated-deltanet-hybrid": 22_876_830,  # as gated-deltanet; layer 4 (of 6) is the paper's attention block
}


@pytest.mark.parametrize("name", sorted(FIELD))
def test_field_param_counts_are_pinned_and_within_ten_percent_of_gam(name):
    count = n_params(build(name))
    assert count == FIELD[name]
    assert abs(count / GAM_PARAMS - 1) <= 0.10


def test_defaults_are_the_paper_config():
    for name in ("gam", "transformer", "mamba", "mamba-paper"):
        cfg = make_config(name)
        assert (cfg.vocab_size, cfg.max_seq_len, cfg.d_model, cfg.n_layers, cfg.dropout) == (10_000, 256, 512, 6, 0.1)
    gam, tf, mamba = make_config("gam"), make_config("transformer"), make_config("mamba")
    assert (gam.num_memory_slots, gam.conv_kernel_size) == (512, 3)
    assert tf.n_heads == 8
    assert (mamba.d_state, mamba.d_conv, mamba.expand) == (16, 4, 3)


def test_standard_mamba_count_is_paper_stack_minus_positions_plus_norms():
    paper, standard = build("mamba-paper"), build("mamba")
    d, T, layers = 512, 256, 6
    # mamba drops the positional embedding and the LayerNorm bias, adds one RMSNorm per layer.
    assert n_params(standard) == n_params(paper) - T * d - d + layers * d


def test_head_is_tied_and_both_keys_are_saved():
    for name in ("gam", "transformer", "mamba-paper"):
        model = build(name, n_layers=1)
        assert model.head.weight is model.token_embedding.weight
        keys = model.state_dict().keys()
        assert "head.weight" in keys and "token_embedding.weight" in keys
    mamba = build("mamba", n_layers=1)
    assert mamba.lm_head.weight is mamba.backbone.embedding.weight


def test_mamba_mixer_shapes_and_init_follow_mamba_ssm():
    mixer = build_block("mamba-paper")
    E, N, R = 3 * 512, 16, math.ceil(512 / 16)
    assert mixer.in_proj.weight.shape == (2 * E, 512) and mixer.in_proj.bias is None
    assert mixer.x_proj.weight.shape == (R + 2 * N, E) and mixer.x_proj.bias is None
    assert mixer.dt_proj.weight.shape == (E, R) and mixer.conv1d.weight.shape == (E, 1, 4)
    assert mixer.out_proj.bias is None
    assert torch.equal(mixer.A_log, torch.log(torch.arange(1, N + 1.0)).expand(E, N))
    assert torch.equal(mixer.D.data, torch.ones(E))
    dt = torch.nn.functional.softplus(mixer.dt_proj.bias)
    assert dt.min() >= 1e-3 * 0.999 and dt.max() <= 0.1 * 1.001
    assert mixer.dt_proj.weight.abs().max() <= R**-0.5
