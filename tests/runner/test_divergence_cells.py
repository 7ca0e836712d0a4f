"""A training cell that diverges is stored as `diverged`, never as `ok` with NaN or inf: through
real workers, for the perplexity and recall tasks, and the report lists it among failed cells."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from gam_bench import store
from gam_bench.report import write_report
from gam_bench.runner import run_suite

pytestmark = pytest.mark.slow  # spawns workers (torch imports)

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"

PERPLEXITY = f"""
name: diverging
task: perplexity
models:
  - {{name: test-nan, overrides: {{nan_after: 5}}}}
  - test-tiny
axes: {{seq_len: 32, batch_size: 8}}
level: lm
mode: train_step
perplexity:
  dataset: tinystories
  data_dir: {DATA}
  vocab_size: 256
  lr: 0.01
  warmup_steps: 2
  budget: {{tokens: 2560}}    # 10 steps of 8 x 32
  eval_interval: 2
  max_eval_tokens: 2000
"""

RECALL = """
name: diverging-recall
task: recall
models:
  - {name: test-nan, overrides: {nan_after: 3}}
axes: {seq_len: 32, d_model: 8, n_layers: 1}
level: lm
recall: {num_kv_pairs: 2, lr: 0.01, vocab_size: 32, batch_size: 4, budget: {steps: 8}}
"""


@pytest.mark.skipif(not (DATA / "tinystories").is_dir(), reason=f"shared data not found at {DATA}")
def test_a_diverged_perplexity_cell_is_stored_as_diverged_and_reported(write_suite, tmp_path, monkeypatch):
    monkeypatch.setenv("GAM_BENCH_CACHE", str(tmp_path / "cache"))
    out = run_suite(write_suite(PERPLEXITY), out=tmp_path / "results", progress=False, report=False)
    df = store.load(out)
    nan = df[df["model"] == "test-nan"].sort_values("step")
    assert set(nan["status"]) == {"diverged"}
    assert list(nan["step"]) == [2, 4, 6]  # two evaluations before it, then the divergence
    assert set(nan["diverged_step"]) == {6} and set(nan["diverged_tokens"]) == {5 * 8 * 32}
    assert math.isfinite(nan["last_finite_loss"].iloc[0])
    assert nan["error"].str.startswith("training diverged: non-finite loss").all()
    assert nan["diverged_where"].str.startswith("forward of 'block.proj'").all(), nan["diverged_where"].iloc[0]
    tiny = df[df["model"] == "test-tiny"]
    assert set(tiny["status"]) == {"ok"} and tiny["val_ppl"].notna().all()
    ok = df[df["status"] == "ok"]
    assert ok[["val_loss", "val_ppl", "train_loss"]].map(math.isfinite).all().all()

    report = write_report(out, tmp_path / "report").read_text()
    failed = report.split("## Failed cells", 1)[1]
    assert "| test-nan |" in failed and "diverged" in failed and "training diverged" in failed
    table = report.split("Val. PPL", 1)[1].split("\n\n", 1)[0]
    nan_line = next(line for line in table.splitlines() if line.startswith("| test-nan"))
    assert (
        "| diverged |" in nan_line and "inf" not in nan_line and "nan" not in nan_line.lower().replace("test-nan", "")
    )


def test_a_diverged_recall_cell_is_stored_as_diverged(write_suite, tmp_path):
    out = run_suite(write_suite(RECALL), out=tmp_path / "results", progress=False, report=False)
    (row,) = store.load(out).to_dict("records")
    assert row["status"] == "diverged" and row["diverged_step"] == 4
    assert math.isfinite(row["last_finite_loss"]) and pd.isna(row["accuracy"])


def test_a_task_that_returns_nan_as_ok_is_an_error_row(monkeypatch):
    from gam_bench.runner import worker

    def nan_task(cell, ctx):
        return [{"time_ms": 1.5}, {"time_ms": math.nan, "val_ppl": math.inf}]

    cell = SimpleNamespace(task="nan", task_spec=SimpleNamespace(run=nan_task))  # a task whose run returns NaN
    rows, status, error = worker.run_task(cell, None)
    assert status == "error" and len(rows) == 2
    assert error == "non-finite result in row 2 of 2: time_ms=nan, val_ppl=inf"
