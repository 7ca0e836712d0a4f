"""Every family declares its minimal work per step (models/work.py), and the roofline built on it."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from gam_bench.errors import UserError
from gam_bench.measure.calibrate import roofline_ms
from gam_bench.models import available, get_spec, make_config, work

# Every model of gam_bench's own zoo, including families added later: each must declare.
ZOO = [n for n in available() if get_spec(n).lm_cls.__module__.startswith("gam_bench.models.")]
SHAPE = {"d_model": 64, "n_layers": 8, "vocab_size": 97}


def _bytes(name, level="block", mode="forward_backward", batch=2, seq_len=256, dtype="float32", params=1000):
    fields = get_spec(name).config_cls.model_fields
    config = make_config(name, **{k: v for k, v in SHAPE.items() if k in fields})
    return work.minimal_bytes(name, config, level, mode, batch, seq_len, dtype, params)


@pytest.mark.parametrize("name", ZOO)
def test_every_zoo_family_declares_its_minimal_work(name):
    work.check_declared(name)  # the clear error below, if a family was added without a formula
    for level in ("block", "lm"):
        forward = _bytes(name, level, "forward")
        backward = _bytes(name, level, "forward_backward")
        train = _bytes(name, level, "train_step")
        assert 0 < forward < backward < train
    assert _bytes(name, seq_len=512) > _bytes(name, seq_len=256)  # activations grow with the length
    assert _bytes(name, dtype="bfloat16") < _bytes(name)  # 2-byte activations under autocast
    assert _bytes(name, level="lm") > _bytes(name)  # layers and logits


def test_transformer_block_bytes_by_hand():
    """10 D + H floats saved per token; weights 3 P; input, output and their gradients 4 B T D."""
    B, T, D, H, P = 2, 256, 64, 8, 1000
    config = make_config("transformer", d_model=D, n_heads=H)
    expected = 3 * P * 4 + 4 * B * T * D * 4 + 2 * B * T * (10 * D + H) * 4
    assert work.minimal_bytes("transformer", config, "block", "forward_backward", B, T, "float32", P) == expected


def test_naive_and_sdpa_attention_are_the_same_minimal_work():
    assert _bytes("transformer") == _bytes("transformer-naive")


def test_a_family_without_a_declaration_is_a_clear_error(monkeypatch):
    """A plugin family (faked here, so nothing is registered for the session) with no formula."""
    monkeypatch.setattr(work.registry, "get_spec", lambda name: SimpleNamespace(family="test-no-work-family"))
    assert not work.declared("test-no-work")
    with pytest.raises(UserError, match=r"model 'test-no-work' \(family 'test-no-work-family'\) declares no minimal"):
        work.check_declared("test-no-work")
    with pytest.raises(UserError, match="saved_per_token"):
        work.minimal_bytes("test-no-work", SimpleNamespace(d_model=8), "block", "forward", 1, 8, "float32", 10)


def test_roofline_is_the_slower_of_compute_and_memory():
    assert roofline_ms(2e9, 1e6, 1e12, 1e10) == pytest.approx(2.0)  # compute-bound: 2 ms vs 0.1 ms
    assert roofline_ms(1e6, 1e9, 1e12, 1e10) == pytest.approx(100.0)  # memory-bound
    assert math.isclose(roofline_ms(1e9, 1e7, 1e12, 1e10), 1.0)
    for missing in [(None, 1e6, 1e12, 1e10), (1e9, None, 1e12, 1e10), (1e9, 1e6, None, 1e10), (1e9, 1e6, 1e12, 0)]:
        assert roofline_ms(*missing) is None
