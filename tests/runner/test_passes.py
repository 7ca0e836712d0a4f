"""`measure.processes` as passes over the sweep (runner/sweep.py `CellSweep`): every pass in fresh workers, a
cell's rows stored once, after its last pass, with every pass's samples; a failed pass ends
the cell with that outcome; the budget rule across passes; pre-flight refuses the setting
where there are no samples to merge. Driven through the in-process `Scripted` executor."""

from __future__ import annotations

import io

import pytest
from cells import make_cell
from rich.console import Console
from test_executor_skeleton import Scripted, _result

from gam_bench import store
from gam_bench.cell import expand
from gam_bench.errors import UserError
from gam_bench.runner.preflight import _check_execution
from gam_bench.runner.progress import SweepProgress
from gam_bench.runner.sweep import CellSweep
from gam_bench.settings import Measure
from gam_bench.suite import suite_from_dict


def _cell(seq_len: int = 8, processes: int = 3, **fields):
    return make_cell(seq_len=seq_len, measure=Measure(warmup=0, repeats=2, processes=processes), **fields)


def _sweep(tmp_path, script, cells):
    ex = Scripted(script)
    out = io.StringIO()
    with SweepProgress(len(cells), Console(file=out), runs=sum(c.measure.processes for c in cells)) as bar:
        rows = CellSweep("passes", tmp_path, ex).run(cells, bar)
    return ex, rows, out.getvalue()


def test_each_pass_runs_every_cell_in_fresh_workers_and_one_row_keeps_all_samples(tmp_path):
    cells = [_cell(8), _cell(16)]
    script = [
        [_result([1.0, 3.0]), _result([10.0, 30.0])],  # worker 0: pass 1, both cells
        [_result([5.0, 7.0]), _result([50.0, 70.0])],  # worker 1: pass 2
        [_result([2.0, 4.0]), _result([20.0, 40.0])],
    ]  # worker 2: pass 3
    ex, rows, text = _sweep(tmp_path, script, cells)
    assert ex.started == 3 and [r["seq_len"] for r in rows] == [8, 16]
    stored = store.load(tmp_path).sort_values("seq_len").to_dict("records")
    assert len(stored) == 2  # no row per pass: one per cell, after its last pass
    first = stored[0]
    assert list(first["time_samples_ms"]) == [1.0, 3.0, 5.0, 7.0, 2.0, 4.0]  # in pass order
    assert list(first["process_medians_ms"]) == [2.0, 6.0, 3.0]
    assert first["time_ms"] == 3.5  # the median of all six samples, not of the three medians
    assert first["processes"] == 3 and list(first["process_pids"]) == [1000, 1001, 1002]
    assert first["tokens_per_s"] == pytest.approx(1000 / 3.5)
    assert first["duration_s"] == pytest.approx(0.75)
    assert "pass 2 of 3 in fresh workers: 2 cells" in text and "pass 3 of 3" in text


def test_a_failed_pass_ends_its_cell_and_the_others_go_on(tmp_path):
    cells = [_cell(8, model="gam"), _cell(8, model="mamba")]
    script = [
        [_result([1.0]), _result([2.0])],
        [_result([1.0], status="error")],  # gam's pass 2 fails: its worker is replaced
        [_result([2.0])],  # mamba's pass 2, on the replacement
        [_result([2.0])],
    ]  # pass 3: mamba only
    ex, rows, _ = _sweep(tmp_path, script, cells)
    by_model = {r["model"]: r for r in store.load(tmp_path).to_dict("records")}
    assert by_model["gam"]["status"] == "error" and by_model["gam"]["error"] == "process 2 of 3: ValueError: boom"
    assert by_model["mamba"]["status"] == "ok" and list(by_model["mamba"]["time_samples_ms"]) == [2.0] * 3
    assert ex.started == 4


def test_an_oom_in_a_later_pass_skips_the_longer_lengths_of_its_group(tmp_path):
    cells = [_cell(8), _cell(16)]
    script = [[_result([1.0]), _result([2.0])], [_result([1.0], status="oom")]]
    _sweep(tmp_path, script, cells)
    stored = store.load(tmp_path).sort_values("seq_len").to_dict("records")
    assert [r["status"] for r in stored] == ["oom", "skipped"]
    assert stored[0]["error"].startswith("process 2 of 3:")
    assert stored[1]["error"] == "budget: same settings ended oom at seq_len=8"


def test_one_process_is_one_pass_on_one_reused_worker(tmp_path):
    cells = [_cell(8, processes=1), _cell(16, processes=1)]
    ex, rows, text = _sweep(tmp_path, [[_result([1.0]), _result([2.0])]], cells)
    assert ex.started == 1 and len(rows) == 2 and "pass" not in text


def test_processes_apply_to_throughput_cells_only():
    suite = {"name": "d", "task": "decode", "models": ["gam"], "axes": {"seq_len": [16]}, "level": "lm"}
    (cell,) = expand(suite_from_dict({**suite, "measure": {"processes": 3}}), "cpu", threads=1)
    with pytest.raises(UserError, match=r"^s.yaml: measure.processes: 3 applies to throughput cells only"):
        _check_execution(cell, "s.yaml")
