"""The decode task's measurement (gam_bench.tasks.decode) on CPU with tiny models."""

from __future__ import annotations

import contextlib

import pytest
import torch

from gam_bench.models import build, build_block
from gam_bench.models.decode import state_bytes
from gam_bench.tasks import decode as task

TINY = {"vocab_size": 97, "d_model": 32, "n_layers": 2, "dropout": 0.0}
FAMILY = {"gam": {"num_memory_slots": 16}, "transformer": {"n_heads": 4}, "mamba": {"d_state": 4}}
N, G, B = 12, 5, 2


def tiny_lm(name: str, family: str, max_seq_len: int = N + G):
    fields = {**TINY, **FAMILY[family]}
    if name != "mamba":
        fields["max_seq_len"] = max_seq_len
    return build(name, **fields)


def measure(module, level="lm", width=97, mode="both", **kwargs):
    args = dict(level=level, width=width, batch_size=B, context_len=N, decode_tokens=G, device="cpu", mode=mode)
    return task.measure_decode(module, **{**args, "warmup": 2, "repeats": 3, **kwargs})


@pytest.mark.parametrize(("name", "family"), [("gam", "gam"), ("transformer", "transformer"), ("mamba", "mamba")])
def test_both_modes_columns(name, family):
    model = tiny_lm(name, family)
    row = measure(model)
    assert len(row["decode_samples_ms"]) == G and all(s > 0 for s in row["decode_samples_ms"])
    assert len(row["prefill_samples_ms"]) >= 3
    assert row["decode_ms_per_token"] == pytest.approx(sorted(row["decode_samples_ms"])[G // 2])
    assert row["decode_tokens_per_s"] == pytest.approx(B / (row["decode_ms_per_token"] / 1e3))
    assert row["prefill_tokens_per_s"] == pytest.approx(B * N / (row["prefill_ms"] / 1e3))
    assert row["prefill_ms_q25"] <= row["prefill_ms"] <= row["prefill_ms_q75"]
    assert row["decode_ms_q25"] <= row["decode_ms_per_token"] <= row["decode_ms_q75"]
    with torch.no_grad():
        _, state = model.prefill(torch.zeros(B, N, dtype=torch.long))
    assert row["state_bytes"] == state_bytes(state)
    assert row["backend"] == model.backend and row["decode_backend"]


def test_transformer_state_bytes_at_n_and_n_plus_g():
    row = measure(tiny_lm("transformer", "transformer"))
    per_position = 2 * 2 * B * 32 * 4  # layers * (k, v) * B * D * fp32
    assert (row["state_bytes"], row["state_bytes_final"]) == (N * per_position, (N + G) * per_position)


def test_recurrent_state_is_constant():
    row = measure(tiny_lm("mamba", "mamba"))
    assert row["state_bytes"] == row["state_bytes_final"] > 0


def test_decode_steps_see_contexts_n_to_n_plus_g_only():
    """Timed steps run at positions N..N+G-1 on a fresh prefill; warmup never goes past N+G."""
    model = tiny_lm("transformer", "transformer")
    seen = []
    decode = model.decode

    def spy(idx, state):
        seen.append(state.layers[0].k.shape[2])  # context length the step attends to, before it
        return decode(idx, state)

    model.decode = spy
    calls = {"n": 0}
    prefill = model.prefill

    def count(*a, **k):
        calls["n"] += 1
        return prefill(*a, **k)

    model.prefill = count
    measure(model, mode="decode", warmup=3)
    assert seen == [N, N + 1, N + 2] + list(range(N, N + G))  # 3 warmup steps, then G timed ones
    assert calls["n"] == 2  # one prefill for warmup, one for the timed steps
    assert max(seen) + 1 <= task.max_seq_len_needed(N, G, "decode")


def test_prefill_only_never_decodes():
    model = tiny_lm("gam", "gam", max_seq_len=N)  # no room for decoding: must not be needed
    model.decode = lambda *a: pytest.fail("decode called in prefill mode")
    row = measure(model, mode="prefill")
    assert row["prefill_ms"] > 0 and row["state_bytes"] > 0
    assert row["decode_ms_per_token"] is None and row["decode_samples_ms"] is None
    assert row["state_bytes_final"] is None and row["decode_backend"] is None


def test_decode_only_has_no_prefill_timing():
    row = measure(tiny_lm("mamba", "mamba"), mode="decode")
    assert row["prefill_ms"] is None and row["prefill_samples_ms"] is None
    assert len(row["decode_samples_ms"]) == G and row["state_bytes"] > 0


@pytest.mark.parametrize("name", ["gam", "transformer-naive", "mamba-paper"])
def test_block_level(name):
    family = name.split("-")[0]
    block = build_block(name, **{**TINY, **FAMILY[family]})
    row = measure(block, level="block", width=32)
    assert len(row["decode_samples_ms"]) == G and row["prefill_ms"] > 0


def test_runs_inside_the_autocast_context():
    entered = []

    @contextlib.contextmanager
    def ctx():
        entered.append(torch.is_inference_mode_enabled())
        yield

    measure(tiny_lm("gam", "gam"), autocast=ctx, warmup=1, repeats=2, max_repeats=2)
    # 1 warmup + 2 timed prefills, then 2 untimed prefills, 1 warmup step and G timed steps.
    assert len(entered) == 1 + 2 + 2 + 1 + G and all(entered)


def test_bfloat16_autocast_runs():
    row = measure(tiny_lm("mamba", "mamba"), autocast=lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    assert len(row["decode_samples_ms"]) == G


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "generate"}, "decode mode must be one of prefill, decode, both"),
        ({"level": "stack"}, "level must be one of"),
        ({"decode_tokens": 0}, "decode_tokens must be >= 1"),
        ({"context_len": 0}, "context length must be >= 1"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = dict(level="lm", width=97, batch_size=1, context_len=4, decode_tokens=2, device="cpu", mode="both")
    with pytest.raises(ValueError, match=match):
        task.measure_decode(tiny_lm("gam", "gam"), **{**args, **kwargs})


def test_prefill_mode_needs_no_decode_tokens():
    assert task.max_seq_len_needed(1024, 64, "prefill") == 1024
    assert task.max_seq_len_needed(1024, 64, "both") == task.max_seq_len_needed(1024, 64, "decode") == 1088
    row = measure(tiny_lm("gam", "gam", max_seq_len=N), mode="prefill", decode_tokens=0)
    assert row["prefill_ms"] > 0
