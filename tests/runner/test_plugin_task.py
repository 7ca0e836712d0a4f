"""A task written outside gam_bench/ (tests/runner/plugin_task.py), named in a suite's
`plugins:`, runs end to end: its rows are stored with its own columns, the report renders
its section, and `compare` judges its gate metric. Also the three ways a task registers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from gam_bench import store
from gam_bench.analysis.compare import compare_frames
from gam_bench.analysis.compare_render import render_markdown
from gam_bench.analysis.verdicts import REGRESSION, UNCHANGED
from gam_bench.errors import UserError
from gam_bench.report import write_report
from gam_bench.runner.runner import run_suite
from gam_bench.suite import suite_from_dict

REPO = Path(__file__).resolve().parents[2]

SUITE = """
name: plugin-task
task: param-count
plugins: [plugin_task, faulty_models]
models: [test-tiny, {name: test-tiny, overrides: {d_model: 16}}]
axes: {seq_len: [8]}
level: lm
device: cpu
threads: 1
param-count: {bytes_per_param: 2}
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("plugin")
    path = tmp / "suite.yaml"
    path.write_text(SUITE)
    return run_suite(path, out=tmp / "results", progress=False, report=False)


def test_the_rows_are_stored_with_the_tasks_columns(results):
    rows = store.load(results)
    assert list(rows["status"]) == ["ok", "ok"] and set(rows["task"]) == {"param-count"}
    assert "param_count" in store.columns() and "param_mib" in store.columns()
    counts = sorted(rows["param_count"])
    assert counts[0] > 0 and counts[1] > counts[0]  # d_model 16 has more parameters than 8
    assert list(rows["param_mib"] * 2**20 / 2) == pytest.approx(list(rows["param_count"]))
    assert list(rows["mode"]) == ["count", "count"]


def test_the_report_renders_the_tasks_section_and_method_note(results, tmp_path):
    text = write_report(results, tmp_path / "report").read_text()
    section = text[text.index("## Parameter count") :]
    assert section.count("| test-tiny | lm |") == 2
    assert "**Parameter count**" in text[text.index("## Method") :]
    assert "## Throughput" not in text


def test_compare_judges_the_tasks_gate_metric(results):
    base = store.load(results)
    same = compare_frames(base, base.copy())
    assert {c.verdict for c in same.cells} == {UNCHANGED} and all(c.counts for c in same.cells)
    heavier = base.copy()
    heavier["param_mib"] = heavier["param_mib"] * 1.5
    comparison = compare_frames(base, heavier)
    assert {c.verdict for c in comparison.cells} == {REGRESSION} and comparison.failed
    (result,) = comparison.cells[0].counts
    assert (result.metric, result.column, result.change) == ("param_mib", "param_mib", pytest.approx(0.5))
    assert comparison.cells[0].time is None and comparison.cells[0].memory is None
    assert "param_mib (param_mib) >= 1.00%" in render_markdown(comparison)


def test_no_file_under_gam_bench_knows_the_test_task():
    found = subprocess.run(["grep", "-rlE", "param-count|plugin_task", str(REPO / "gam_bench")], capture_output=True)
    assert found.stdout == b""


# ---------------------------------------------------------------- three ways in


def test_a_task_name_a_plugin_does_not_register_is_a_one_line_error():
    body = {"name": "s", "task": "param-cnt", "models": ["gam"], "axes": {"seq_len": [8]}}
    with pytest.raises(
        UserError, match=r"^s.yaml: task: not a registered task \(did you mean 'param-count'\?\) \(got 'param-cnt'\)$"
    ):
        suite_from_dict({**body, "plugins": ["plugin_task"]}, source="s.yaml")


def test_a_lazy_module_attr_entry_and_an_entry_point_register_tasks(monkeypatch):
    import plugin_task

    from gam_bench import tasks

    registry = tasks.TASKS.copy()
    monkeypatch.setattr(tasks, "TASKS", registry)
    assert registry.lazy["recall"] == "gam_bench.tasks.recall:TASK"  # "module:attr", imported on first use
    assert tasks.get_task("recall") is sys.modules["gam_bench.tasks.recall"].TASK

    class EntryPoint:
        name, value = "ep-count", "plugin_task:ParamCount"

        def load(self):
            return plugin_task.ParamCount

    monkeypatch.setattr(tasks, "_entry_points", lambda: [EntryPoint()])
    monkeypatch.setattr(tasks, "_plugins_loaded", False)
    assert "ep-count" in tasks.available()
    task = tasks.get_task("ep-count")
    assert isinstance(task, plugin_task.ParamCount) and task.name == "ep-count"
    assert task.columns["param_mib"] == "float64"


def test_a_plugin_task_cannot_take_a_built_in_name():
    from gam_bench.tasks import register_task
    from gam_bench.tasks.base import Task

    with pytest.raises(ValueError, match="'decode' is a built-in name"):

        @register_task("decode")
        class Other(Task):
            pass


def test_stored_rows_keep_a_column_no_loaded_task_declares(tmp_path):
    """A plugin task's results read where its plugin is not imported keep its columns."""
    rows = [{"cell_id": "c", "status": "ok", "task": "throughput", "started_at": pd.Timestamp.now(tz="UTC")}]
    store.append(rows, tmp_path)
    table = store.to_table(rows).append_column("foreign_metric", store.pa.array([1.5]))
    store.pq.write_table(table, tmp_path / "part-foreign.parquet")
    loaded = store.load(tmp_path)
    assert list(loaded["foreign_metric"].dropna()) == [1.5]
