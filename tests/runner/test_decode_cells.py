"""Decode cells: the suite schema (task decode, its modes, `decode:` settings), the
load-time capability check, and sweeps through the runner: rows with task = decode, budget
skipping after an OOM or a timeout, exactly as for throughput cells.

Test-only decoding models live in decode_models.py next to this file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from gam_bench import store
from gam_bench.cell import Cell, expand
from gam_bench.errors import UserError
from gam_bench.runner import run_suite
from gam_bench.runner.runner import plan
from gam_bench.suite import load_suite, suite_from_dict

REPO = Path(__file__).resolve().parents[2]

BASE = {"name": "d", "task": "decode", "models": ["gam"], "axes": {"seq_len": [16, 32]}, "level": "lm"}


def cells_of(**fields):
    return expand(suite_from_dict({**BASE, **fields}), "cpu", threads=1)


# ---------------------------------------------------------------- schema


def test_decode_suite_defaults_to_mode_both_and_64_decode_tokens():
    cells = cells_of()
    assert [(c.task, c.mode, c.settings.decode_tokens, c.seq_len) for c in cells] == [
        ("decode", "both", 64, 16),
        ("decode", "both", 64, 32),
    ]
    assert '"decode":{"decode_tokens":64}' in cells[0].config_json  # part of the identity


def test_modes_sweep_and_a_prefill_cell_decodes_nothing():
    cells = cells_of(mode=["prefill", "decode"], decode={"decode_tokens": 8})
    assert [(c.mode, c.settings.decode_tokens) for c in cells] == [("prefill", 0)] * 2 + [("decode", 8)] * 2
    other_g = cells_of(mode="prefill", decode={"decode_tokens": 3})
    assert [c.cell_id for c in other_g] == [c.cell_id for c in cells[:2]]  # G is no part of a prefill cell


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"task": "throughput", "mode": "decode"},
            "mode[0]: Input should be 'forward', 'forward_backward' or 'train_step' (got 'decode')",
        ),
        ({"mode": ["both", "forward"]}, "mode[1]: Input should be 'prefill', 'decode' or 'both' (got 'forward')"),
        ({"decode": {"decode_tokens": 0}}, "decode: decode_tokens must be >= 1 when mode is 'both' (got 0)"),
        ({"decode": {"decode_tokens": -1}, "mode": "prefill"}, "decode.decode_tokens: Input should be greater than"),
        ({"decode": {"tokens": 4}}, "decode.tokens: unknown field (value 4)"),
        ({"task": "throughput", "decode": {}, "mode": "forward"}, "decode: a 'decode:' section needs 'task: decode'"),
        ({"perplexity": {}}, "perplexity: a 'perplexity:' section needs 'task: perplexity'"),
    ],
)
def test_bad_decode_suites_are_one_line_errors(fields, expected):
    with pytest.raises(UserError) as info:
        suite_from_dict({**BASE, **fields}, source="s.yaml")
    assert str(info.value).startswith(f"s.yaml: {expected}"), str(info.value)


def test_prefill_mode_allows_zero_decode_tokens():
    assert [c.settings.decode_tokens for c in cells_of(mode="prefill", decode={"decode_tokens": 0})] == [0, 0]


def test_a_cell_mode_must_be_one_of_its_tasks():
    cell = cells_of()[0]
    with pytest.raises(ValidationError, match="a decode cell cannot have mode 'forward'"):
        Cell(**{**cell.model_dump(), "mode": "forward"})
    with pytest.raises(ValidationError, match="a decode cell needs decode settings"):
        Cell(**{**cell.model_dump(), "settings": None})
    with pytest.raises(ValidationError, match="decode_tokens must be >= 1 when mode is 'decode'"):
        Cell(**{**cell.model_dump(), "mode": "decode", "settings": {"decode_tokens": 0}})


def test_the_cpu_profile_of_the_shipped_suite():
    cells = expand(load_suite(REPO / "suites" / "decode.yaml"), "cpu", threads=2)
    models = {c.model for c in cells}
    paper = {"gam", "transformer-naive", "transformer", "mamba", "mamba-paper"}
    field = {"mamba2", "gated-deltanet", "gated-deltanet-hybrid", "gla", "retnet", "swa", "hyena"}
    assert models == paper | field
    assert {c.mode for c in cells} == {"both"} and {c.settings.decode_tokens for c in cells} == {64}
    gpu = expand(load_suite(REPO / "suites" / "decode.yaml"), "cuda", threads=2)
    assert {c.batch_size for c in gpu} == {1, 16} and {c.dtype for c in gpu} == {"float16"}
    assert min(c.seq_len for c in gpu) == 1024 and max(c.seq_len for c in gpu) == 131072


# ---------------------------------------------------------------- load-time capability check


def suite_text(body: str) -> str:
    head = "plugins: [faulty_models, decode_models]\ndevice: cpu\nthreads: 1\nname: dec\ntask: decode\nlevel: lm\n"
    return head + textwrap.dedent(body)


def test_a_model_without_decode_is_refused_at_load_time(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text(suite_text("models: [test-decode, test-tiny]\naxes: {seq_len: [8]}\n"))
    with pytest.raises(UserError) as info:
        plan(path)
    assert str(info.value).startswith(
        f"{path}: models[1]: model 'test-tiny' cannot run task 'decode' at level 'lm': its LM class has no "
        "prefill/decode methods"
    )
    path.write_text(suite_text("models: [test-decode]\naxes: {seq_len: [8]}\n"))
    assert [c.model for c in plan(path)[2]] == ["test-decode"]


def test_block_level_capability_is_checked_per_level(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text(suite_text("models: [test-tiny]\naxes: {seq_len: [8]}\n").replace("level: lm", "level: block"))
    with pytest.raises(UserError, match=r"models\[0\]: model 'test-tiny' cannot run task 'decode' at level 'block'"):
        plan(path)


def test_cli_refuses_it_in_one_line_with_exit_2(tmp_path, cli_env):
    path = tmp_path / "suite.yaml"
    path.write_text(suite_text("models: [test-tiny]\naxes: {seq_len: [8]}\n"))
    proc = subprocess.run(
        [sys.executable, "-m", "gam_bench.cli.main", "run", str(path), "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "model 'test-tiny' cannot run task 'decode'" in lines[0], proc.stderr
    assert not (tmp_path / "r").exists() or not store.part_files(tmp_path / "r")  # nothing ran


def test_the_test_decoder_matches_its_full_forward():
    import decode_models

    model = decode_models.PairLM(decode_models.PairConfig())
    idx = torch.randint(0, 31, (2, 9))
    with torch.no_grad():
        full = model(idx)
        out, state = model.prefill(idx[:, :5])
        steps = [out]
        for t in range(5, 9):
            step, state = model.decode(idx[:, t : t + 1], state)
            steps.append(step)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- through the runner

LENGTHS = (8, 16, 24)
TIMEOUT_S = 6

SWEEP = f"""
models:
  - {{name: gam, overrides: {{d_model: 16, n_layers: 1}}}}
  - test-decode
  - {{name: test-decode-oom, overrides: {{max_ok_len: 8}}}}
  - {{name: test-decode-hang, overrides: {{max_ok_len: 8}}}}
axes: {{seq_len: {list(LENGTHS)}, batch_size: 2}}
decode: {{decode_tokens: 3}}
measure: {{warmup: 1, repeats: 2}}
limits: {{timeout_s: {TIMEOUT_S}, mem_cap_gb: 1.5}}
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    folder = tmp_path_factory.mktemp("decode-sweep")
    path = folder / "suite.yaml"
    path.write_text(suite_text(SWEEP))
    df = store.load(run_suite(path, out=folder / "results", progress=False, report=False))
    return {(r.model, r.seq_len): r for r in df.itertuples()}, df


@pytest.mark.slow
def test_rows_go_into_the_store_with_task_decode(swept):
    by_cell, df = swept
    assert len(df) == 4 * len(LENGTHS) and set(df["task"]) == {"decode"} and set(df["mode"]) == {"both"}
    ok = df[df["status"] == "ok"]
    assert set(ok["model"]) == {"gam", "test-decode", "test-decode-oom", "test-decode-hang"}
    for column in ("prefill_ms", "decode_ms_per_token", "decode_tokens_per_s", "state_bytes"):
        assert (ok[column] > 0).all(), column
    assert ok["peak_mem_bytes"].notna().all() and (ok["peak_mem_bytes"] >= 0).all()  # CPU: RSS growth, may be 0
    assert set(ok["decode_tokens"]) == {3} and all(len(s) == 3 for s in ok["decode_samples_ms"])
    assert all(len(s) >= 2 for s in ok["prefill_samples_ms"])
    gam = by_cell[("gam", 24)]
    assert (gam.d_model, gam.n_layers, gam.family, gam.backend) == (16, 1, "gam", gam.decode_backend)
    assert gam.params > 0 and gam.mem_source
    tiny = by_cell[("test-decode", 16)]
    assert tiny.state_bytes == tiny.state_bytes_final == 2 * 8 * 4  # (B, 1, D) float32, constant in N


@pytest.mark.slow
def test_an_oom_skips_the_longer_contexts(swept):
    by_cell, _ = swept
    assert [by_cell[("test-decode-oom", n)].status for n in LENGTHS] == ["ok", "oom", "skipped"]
    assert "simulated: prefill of 16 > 8" in by_cell[("test-decode-oom", 16)].error
    assert by_cell[("test-decode-oom", 24)].error == "budget: same settings ended oom at seq_len=16"


@pytest.mark.slow
def test_a_timeout_skips_the_longer_contexts(swept):
    by_cell, _ = swept
    assert [by_cell[("test-decode-hang", n)].status for n in LENGTHS] == ["ok", "timeout", "skipped"]
    assert f"timeout of {TIMEOUT_S} s" in by_cell[("test-decode-hang", 16)].error
    assert by_cell[("test-decode-hang", 24)].error == "budget: same settings ended timeout at seq_len=16"
