"""Failures are data: raising, memory-hogging, hanging and self-killing cells become rows,
the sweep goes on, workers are reused and replaced after a failure, and the budget rule
skips the longer lengths after an oom or a timeout."""

from __future__ import annotations

import json

import pytest

from gam_bench import store
from gam_bench.runner import run_suite

pytestmark = pytest.mark.slow  # spawns several workers (torch imports)

LENGTHS = (8, 24, 32)  # priming runs at min(seq_len, 16): keep fail_at off 16
TIMEOUT_S = 6

SUITE = f"""
name: failures
models:
  - test-pid
  - {{name: test-raises, overrides: {{fail_at: 24}}}}
  - test-pid2
  - test-hog
  - test-hang
  - {{name: test-kill, overrides: {{fail_at: 24}}}}
  - {{name: test-oom-long, overrides: {{max_ok_len: 8}}}}
  - {{name: test-oom-long, overrides: {{max_ok_len: 24}}}}  # a second budget group of one model
axes: {{seq_len: {list(LENGTHS)}, batch_size: 1}}
level: block
mode: forward_backward
measure: {{warmup: 1, repeats: 2, flops: false}}
limits: {{timeout_s: {TIMEOUT_S}, mem_cap_gb: 1.5}}
"""


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    folder = tmp_path_factory.mktemp("failures")
    path = folder / "suite.yaml"
    path.write_text("plugins: [faulty_models]\ndevice: cpu\nthreads: 1\n" + SUITE)
    out = run_suite(path, out=folder / "results", progress=False, report=False)
    df = store.load(out)
    return {(_label(r), r.seq_len): r for r in df.itertuples()}, df


def _label(row) -> str:
    """The model name; the second test-oom-long group is "test-oom-long@24"."""
    max_ok_len = json.loads(row.config_json)["overrides"].get("max_ok_len")
    return f"{row.model}@24" if max_ok_len == 24 else row.model


def statuses(by_cell, model):
    return [by_cell[(model, n)].status for n in LENGTHS]


def test_one_row_per_cell_with_identity_and_environment(result):
    _, df = result
    assert len(df) == 8 * len(LENGTHS) and df["cell_id"].is_unique
    for column in (
        "suite",
        "run_id",
        "family",
        "config_json",
        "torch_version",
        "cpu_model",
        "hostname",
        "gam_bench_version",
        "device_name",
        "started_at",
        "duration_s",
        "threads",
        "executor",
        "d_model",
        "n_layers",
    ):
        assert df[column].notna().all(), column
    assert set(df["threads"]) == {1} and set(df["executor"]) == {"local"} and set(df["suite"]) == {"failures"}


def test_a_raising_model_gives_error_rows_and_the_sweep_goes_on(result):
    by_cell, _ = result
    assert statuses(by_cell, "test-raises") == ["ok", "error", "ok"]  # an error does not trigger the budget
    assert "ValueError: this model always fails" in by_cell[("test-raises", 24)].error
    assert statuses(by_cell, "test-pid2") == ["ok"] * 3


def test_workers_are_reused_and_replaced_after_a_failure(result):
    by_cell, _ = result
    before = {by_cell[("test-pid", n)].backend for n in LENGTHS}
    after = {by_cell[("test-pid2", n)].backend for n in LENGTHS}
    assert len(before) == 1 and len(after) == 1  # one worker for consecutive ok cells
    assert before != after  # a fresh worker after the failures in between


def test_allocation_past_the_memory_cap_is_an_oom_row(result):
    by_cell, _ = result
    hog = by_cell[("test-hog", 8)]
    assert hog.status == "oom", hog.error
    assert "allocate" in hog.error or "MemoryError" in hog.error
    assert statuses(by_cell, "test-hog")[1:] == ["skipped", "skipped"]


def test_a_hang_past_the_timeout_is_a_timeout_row(result):
    by_cell, _ = result
    hang = by_cell[("test-hang", 8)]
    assert hang.status == "timeout" and f"timeout of {TIMEOUT_S} s" in hang.error
    assert hang.duration_s >= TIMEOUT_S
    assert statuses(by_cell, "test-hang")[1:] == ["skipped", "skipped"]
    assert "timeout at seq_len=8" in by_cell[("test-hang", 32)].error


def test_a_self_killing_cell_is_an_error_row_naming_the_signal(result):
    by_cell, _ = result
    assert statuses(by_cell, "test-kill") == ["ok", "error", "ok"]
    assert "killed by SIGKILL" in by_cell[("test-kill", 24)].error


def test_budget_skips_longer_lengths_after_an_oom(result):
    by_cell, _ = result
    assert statuses(by_cell, "test-oom-long") == ["ok", "oom", "skipped"]
    skipped = by_cell[("test-oom-long", 32)]
    assert skipped.error == "budget: same settings ended oom at seq_len=24"
    assert skipped.torch_version and skipped.duration_s == 0


def test_budget_groups_of_one_model_are_kept_apart(result):
    by_cell, _ = result
    assert statuses(by_cell, "test-oom-long@24") == ["ok", "ok", "oom"]  # not skipped by the other group's oom
    assert by_cell[("test-oom-long@24", 32)].error.startswith("OutOfMemoryError: simulated: seq_len 32 > 24")
