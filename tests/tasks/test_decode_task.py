"""The decode task's measurement (gam_bench.tasks.decode) on CPU with tiny models."""

from __future__ import annotations

import contextlib

import pytest
import torch

from gam_bench.models import build, build_block
from gam_bench.models.decode import state_bytes
from gam_bench.tasks.decode import measure as task
from gam_bench.tasks.decode.settings import max_seq_len_needed

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
    assert max(seen) + 1 <= max_seq_len_needed(N, G, "decode")


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
    # 1 warmup prefill and 1 warmup step on its state, 2 timed prefills, then G timed steps.
    assert len(entered) == 1 + 1 + 2 + G and all(entered)


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
    assert max_seq_len_needed(1024, 64, "prefill") == 1024
    assert max_seq_len_needed(1024, 64, "both") == max_seq_len_needed(1024, 64, "decode") == 1088
    row = measure(tiny_lm("gam", "gam", max_seq_len=N), mode="prefill", decode_tokens=0)
    assert row["prefill_ms"] > 0


def _spy_calls(model):
    """Record what the clocks see: ("prefill", T) and ("decode", context before the step)."""
    calls = []
    prefill, decode = model.prefill, model.decode

    def spy_prefill(idx, **kwargs):
        calls.append(("prefill", idx.shape[1]))
        return prefill(idx, **kwargs)

    def spy_decode(idx, state):
        calls.append(("decode", state.layers[0].k.shape[2]))
        return decode(idx, state)

    model.prefill, model.decode = spy_prefill, spy_decode
    return calls


def test_both_warms_decode_on_the_warmup_state_and_decodes_from_the_last_timed_prefill():
    model = tiny_lm("transformer", "transformer")
    calls = _spy_calls(model)
    measure(model, mode="both", warmup=2, repeats=3, max_repeats=3)
    warm = [("prefill", N)] * 2 + [("decode", N), ("decode", N + 1)]
    timed = [("prefill", N)] * 3 + [("decode", n) for n in range(N, N + G)]
    assert calls == warm + timed  # warmup + repeats prefills; no step beyond N + G positions


def test_without_warmup_both_runs_repeats_prefills_only():
    model = tiny_lm("transformer", "transformer")
    calls = _spy_calls(model)
    measure(model, mode="both", warmup=0, repeats=2, max_repeats=2)
    assert calls == [("prefill", N)] * 2 + [("decode", n) for n in range(N, N + G)]


def test_the_clocks_synchronise_the_cells_device(monkeypatch):
    seen = []
    real_warm, real_time = task.warm_up, task.time_steps
    monkeypatch.setattr(task, "warm_up", lambda step, n, device=None: seen.append(device) or real_warm(step, n))
    monkeypatch.setattr(task, "time_steps", lambda *a, device=None: seen.append(device) or real_time(*a))
    measure(tiny_lm("gam", "gam"), warmup=1)
    assert seen and all(d == torch.device("cpu") for d in seen)


# ---------------------------------------------------------------- the task: run(cell, ctx)


def decode_cell(model="transformer", mode="both", G=G, level="lm", **overrides):
    from gam_bench.cell import Cell
    from gam_bench.settings import Limits, Measure
    from gam_bench.tasks.decode.settings import DecodeSettings

    family = model.split("-")[0]
    fields = {**TINY, **FAMILY[family], **overrides}
    return Cell(
        task="decode",
        model=model,
        overrides=fields,
        level=level,
        mode=mode,
        dtype="float32",
        device="cpu",
        batch_size=B,
        seq_len=N,
        seed=0,
        threads=1,
        measure=Measure(warmup=1, repeats=2, max_repeats=2),
        limits=Limits(),
        plugins=[],
        settings=DecodeSettings(decode_tokens=G).for_mode(mode),
    )


def test_run_returns_one_row_with_model_facts_and_decode_tokens():
    from gam_bench.tasks import get_task
    from gam_bench.tasks.base import SILENT

    (row,) = get_task("decode").run(decode_cell(), SILENT)
    assert row["decode_tokens"] == G and len(row["decode_samples_ms"]) == G
    assert len(row["prefill_samples_ms"]) == 2  # the cell's measure settings
    assert (row["d_model"], row["n_layers"]) == (32, 2) and row["params"] > 0
    assert row["backend"] and row["state_bytes"] == N * 2 * 2 * B * 32 * 4  # layers * (k, v) * B * D * fp32
    assert "peak_mem_bytes" not in row  # the worker measures it, around the whole cell
    from gam_bench import store

    store.to_table([{**row, "status": "ok", "cell_id": "x"}])  # every column is in the store schema


def test_run_at_block_level_and_prefill_only():
    (block,) = task.run(decode_cell("gam", level="block"))
    assert block["n_layers"] == 1 and len(block["decode_samples_ms"]) == G
    (prefill,) = task.run(decode_cell("mamba", mode="prefill"))
    assert prefill["decode_tokens"] == 0 and prefill["decode_ms_per_token"] is None and prefill["prefill_ms"] > 0


def test_the_built_model_makes_room_for_n_plus_g_positions():
    from gam_bench.models.builder import build_for

    model, config = build_for(decode_cell())
    assert config.max_seq_len == model.config.max_seq_len == N + G
    _, config = build_for(decode_cell(mode="prefill"))
    assert config.max_seq_len == N
    _, config = build_for(decode_cell(max_seq_len=100))
    assert config.max_seq_len == 100  # the suite's own value wins when it is enough


def test_a_max_seq_len_below_n_plus_g_is_a_user_error():
    from gam_bench.errors import UserError

    with pytest.raises(UserError, match=r"max_seq_len=12 is below the 17 positions a both cell at seq_len=12"):
        task.run(decode_cell(max_seq_len=N))
