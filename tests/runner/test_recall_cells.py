"""Recall suites: expansion into one cell per entry x seq_len x d_model x (num_kv_pairs, lr), the
load-time and pre-flight checks, and a sweep whose failures and timeouts become rows."""

from __future__ import annotations

import json
import re
import textwrap

import pytest

from gam_bench import store
from gam_bench.cell import expand
from gam_bench.errors import UserError
from gam_bench.runner import run_suite
from gam_bench.runner.runner import plan
from gam_bench.suite import load_suite, suite_from_dict

SUITE = """
name: recall-demo
task: recall
models:
  - transformer
  - {name: mamba, recall: {lr: 0.01}}
axes: {seq_len: [32, 64], d_model: [16, 32], n_layers: 2}
level: lm
recall:
  num_kv_pairs: {32: 2, 64: 4}
  lr: [0.001, 0.003]
  vocab_size: 32
  batch_size: 8
  seed: 3
  budget: {steps: 5}
"""


def _suite(tmp_path, text: str = SUITE):
    path = tmp_path / "suite.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_one_cell_per_entry_length_width_and_point(tmp_path):
    cells = expand(load_suite(_suite(tmp_path)), "cpu", threads=1)
    got = [(c.model, c.overrides["d_model"], c.seq_len, c.settings.num_kv_pairs, c.settings.lr) for c in cells]
    transformer = [(d, t, {32: 2, 64: 4}[t], lr) for d in (16, 32) for t in (32, 64) for lr in (0.001, 0.003)]
    mamba = [(d, t, {32: 2, 64: 4}[t], 0.01) for d in (16, 32) for t in (32, 64)]
    assert got == [("transformer", *g) for g in transformer] + [("mamba", *g) for g in mamba]
    assert len({c.cell_id for c in cells}) == len(cells) == 12
    assert all(c.task == "recall" and json.loads(c.config_json)["perplexity"] is None for c in cells)
    assert {(c.batch_size, c.seed) for c in cells} == {(8, 3)}  # from the recall section, not the axes
    assert all(json.loads(c.config_json)["recall"]["lr"] == c.settings.lr for c in cells)


def test_a_budget_group_spans_the_lengths_of_one_lr_whatever_the_pair_count(tmp_path):
    cells = [c for c in expand(load_suite(_suite(tmp_path)), "cpu", threads=1) if c.model == "transformer"]
    groups: dict[str, list[tuple[int, float]]] = {}
    for c in cells:
        groups.setdefault(c.group_key, []).append((c.seq_len, c.settings.lr))
    # one group per (d_model, lr); in each, the lengths ascending (their pair counts differ)
    assert sorted(groups.values()) == sorted([[(32, lr), (64, lr)] for _ in (16, 32) for lr in (0.001, 0.003)])


def test_preflight_resolves_width_and_depth(tmp_path):
    _, _, cells = plan(_suite(tmp_path), "cpu")
    assert {(c.d_model, c.n_layers) for c in cells} == {(16, 2), (32, 2)}
    assert all(c.d_model == c.overrides["d_model"] for c in cells)


BASE = {"name": "r", "task": "recall", "models": ["transformer"], "axes": {"seq_len": [32]}, "level": "lm"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"recall": {"num_kv_pairs": 9}}, "recall.num_kv_pairs: MQAR: seq_len=32 is too short for num_kv_pairs=9"),
        ({"recall": {"num_kv_pairs": {64: 4}}}, "recall.num_kv_pairs: num_kv_pairs has no entry for seq_len=32"),
        ({"recall": {"num_kv_pairs": 4, "vocab_size": 6}}, "recall.vocab_size: MQAR: vocab_size=6 is too small"),
        (
            {"models": [{"name": "transformer", "recall": {"vocab_size": 4}}], "recall": {"num_kv_pairs": 4}},
            "models[0].recall.vocab_size: MQAR: vocab_size=4 is too small for num_kv_pairs=4",
        ),
        ({"recall": {}, "level": "block"}, "level: the recall task trains language models: use level: lm"),
        ({"recall": {}, "axes": {"seq_len": [64], "batch_size": 4}}, "axes.batch_size: a recall suite sets it"),
        ({"recall": {}, "axes": {"seq_len": [64], "seed": [1, 2]}}, "axes.seed: a recall suite sets it in its"),
        ({}, "recall: task 'recall' needs a 'recall:' section"),
        (
            {"recall": {"num_kv_pairs": 2, "budget": {"seconds": 60}}, "limits": {"timeout_s": 60}},
            "recall.budget: seconds=60 leaves no time in limits.timeout_s=60",
        ),
        ({"task": "throughput", "recall": {}}, "recall: a 'recall:' section needs 'task: recall'"),
        ({"task": "recall", "recall": {}, "perplexity": {}}, "perplexity: a 'perplexity:' section needs"),
        ({"recall": {"lr": []}}, "recall.lr: learning rates must be a non-empty list"),
        (
            {"task": "throughput", "level": "block", "models": [{"name": "gam", "recall": {"lr": 0.1}}]},
            "models[0].recall: per-model recall settings need 'task: recall'",
        ),
        (
            {"models": [{"name": "gam", "recall": {"lrr": 0.1}}], "recall": {}},
            "models[0].recall.lrr: unknown field (value 0.1)",
        ),
        (
            {"recall": {"num_kv_pairs": 2}, "profiles": {"cpu": {"recall": {"num_kv_pairs": 20}}}},
            "profiles.cpu.recall.num_kv_pairs: MQAR: seq_len=32 is too short for num_kv_pairs=20",
        ),
    ],
)
def test_impossible_recall_settings_are_one_line_errors_at_load_time(change, message):
    with pytest.raises(UserError) as info:
        suite_from_dict({**BASE, **change}, source="s.yaml")
    assert str(info.value).startswith("s.yaml: ") and message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "transformer", "overrides": {"vocab_size": 99}}, "models[0].overrides.vocab_size: the recall task"),
        ({"name": "transformer", "overrides": {"max_seq_len": 99}}, "models[0].overrides.max_seq_len: the recall"),
    ],
)
def test_preflight_refuses_what_the_task_sets_itself(entry, message):
    suite = suite_from_dict({**BASE, "models": [entry], "recall": {"num_kv_pairs": 2}}, source="s.yaml")
    with pytest.raises(UserError, match="^" + re.escape(f"s.yaml: {message}")):
        plan(suite, "cpu")


@pytest.mark.slow  # spawns workers (torch imports) and waits out a timeout
def test_failures_and_timeouts_are_rows_and_the_budget_rule_holds(write_suite, tmp_path):
    path = write_suite(
        """
        name: recall-failures
        task: recall
        models:
          - test-tiny
          - {name: test-raises, overrides: {fail_at: 16}}
          - test-hang
        axes: {seq_len: [16, 32], d_model: 8, n_layers: 1}
        level: lm
        limits: {timeout_s: 6}
        recall:
          num_kv_pairs: {16: 2, 32: 4}
          lr: 0.01
          vocab_size: 16
          train_examples: 64
          test_examples: 16
          batch_size: 8
          budget: {steps: 3}
        """
    )
    df = store.load(run_suite(path, out=tmp_path / "results", progress=False, report=False))
    by = {(r.model, r.seq_len): r for r in df.itertuples()}
    assert len(df) == 6 and set(df["task"]) == {"recall"}
    for seq_len, pairs in ((16, 2), (32, 4)):
        ok = by[("test-tiny", seq_len)]
        assert ok.status == "ok" and ok.num_kv_pairs == pairs and ok.step == 3 and ok.n_answers == 16 * pairs
        assert 0 <= ok.accuracy <= 1 and ok.chance == 1 / 8 and ok.lr == 0.01 and ok.params > 0
        assert ok.batch_size == 8 and ok.d_model == 8 and ok.n_layers == 1 and ok.dataset == "mqar"
    assert by[("test-raises", 16)].status == "error" and "always fails" in by[("test-raises", 16)].error
    assert by[("test-raises", 32)].status == "ok"  # an error is no budget failure: the longer length runs
    hang = by[("test-hang", 16)]
    assert hang.status == "timeout" and pd_isna(hang.accuracy)
    skipped = by[("test-hang", 32)]  # another pair count, same budget group
    assert skipped.status == "skipped" and "timeout at seq_len=16" in skipped.error


def pd_isna(value) -> bool:
    return value is None or value != value
