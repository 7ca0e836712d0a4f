"""The counting pass (runner/counting.py), driven through the in-process `Scripted` executor with
valgrind found or not found by a fake: its columns join each cell's row, its workers start
through the launcher, and where nothing can be counted every row says why and the run prints it."""

from __future__ import annotations

import io
from typing import Any

import pytest
from cells import make_cell
from rich.console import Console
from test_executor_skeleton import Scripted, _result

from gam_bench import store
from gam_bench.analysis.rows import present
from gam_bench.errors import UserError
from gam_bench.measure import valgrind
from gam_bench.runner import counting
from gam_bench.runner.progress import SweepProgress
from gam_bench.runner.sweep import CellSweep
from gam_bench.settings import Measure

FOUND = valgrind.Valgrind("/usr/bin/valgrind", (3, 19, 0))


class Launching(Scripted):
    """Scripted, plus the local executor's `launcher`: records the launcher each worker started with."""

    def __init__(self, script: list[list[Any]]) -> None:
        self.launcher = None
        self.launched: list[Any] = []
        super().__init__(script)

    def start(self, slot, cell):
        self.launched.append(self.launcher)
        return super().start(slot, cell)


def _cell(seq_len: int = 8, instructions: bool = True, **fields):
    return make_cell(seq_len=seq_len, measure=Measure(warmup=0, repeats=2, instructions=instructions), **fields)


def _counted(samples: list[int]) -> dict[str, Any]:
    result = _result([1.0])
    result["rows"] = [
        {
            "instructions": float(sorted(samples)[1]),
            "instructions_samples": samples,
            "instructions_tool": "callgrind 3.19.0",
        }
    ]
    return result


def _sweep(tmp_path, ex, cells):
    out = io.StringIO()
    with SweepProgress(len(cells), Console(file=out, width=200), runs=2 * len(cells)) as bar:
        CellSweep("counting", tmp_path, ex).run(cells, bar)
    return store.load(tmp_path).sort_values("seq_len").to_dict("records"), out.getvalue()


def test_counting_cells_are_counted_first_under_the_launcher_then_timed_in_plain_workers(tmp_path, monkeypatch):
    monkeypatch.setattr(valgrind, "find", lambda path=None: FOUND)
    ex = Launching([[_counted([100, 101, 99]), _counted([200, 200, 200])], [_result([1.0]), _result([2.0])]])
    rows, text = _sweep(tmp_path, ex, [_cell(8), _cell(16)])
    assert [r["instructions"] for r in rows] == [100.0, 200.0]
    assert list(rows[0]["instructions_samples"]) == [100, 101, 99]
    assert rows[0]["instructions_tool"] == "callgrind 3.19.0" and not present(rows[0]["instructions_reason"])
    assert [r["time_ms"] for r in rows] == [1.0, 2.0]  # the times are the plain workers'
    assert ex.launched[0] is not None and ex.launched[0].name == "python-under-callgrind"
    assert ex.launched[1] is None and ex.launcher is None  # timing workers start plainly
    assert not ex.launched[0].exists()  # the pass's folder is removed afterwards
    assert "counting instructions of 2 cells under callgrind 3.19.0" in text
    assert "counted gam block forward float32 B=1 T=8: 100 instructions a step" in text


def test_without_valgrind_every_counting_row_records_why_and_the_run_says_so(tmp_path, monkeypatch):
    missing = valgrind.Valgrind(None, None, "valgrind is not installed (not on PATH)")
    monkeypatch.setattr(valgrind, "find", lambda path=None: missing)
    ex = Launching([[_result([1.0]), _result([2.0])]])
    rows, text = _sweep(tmp_path, ex, [_cell(8), _cell(16, instructions=False)])
    assert rows[0]["instructions_reason"] == missing.reason and not present(rows[0]["instructions"])
    assert not present(rows[1]["instructions_reason"])  # it did not ask
    assert "warning: instructions not counted in 1 cells: valgrind is not installed" in text
    assert ex.launched == [None]  # no counting worker was started


def test_an_executor_without_a_launcher_records_why(tmp_path, monkeypatch):
    monkeypatch.setattr(valgrind, "find", lambda path=None: FOUND)
    rows, _ = _sweep(tmp_path, Scripted([[_result([1.0])]]), [_cell(8)])
    assert "cannot start workers under valgrind" in rows[0]["instructions_reason"]


def test_a_failed_counting_cell_is_still_timed_and_its_row_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(valgrind, "find", lambda path=None: FOUND)
    ex = Launching([[_result([1.0], status="error")], [_result([3.0])]])
    rows, _ = _sweep(tmp_path, ex, [_cell(8)])
    assert rows[0]["status"] == "ok" and rows[0]["time_ms"] == 3.0
    assert rows[0]["instructions_reason"] == "counting worker: error: ValueError: boom"


def test_the_counting_cell_gets_a_longer_timeout():
    cell = _cell(8)
    assert counting.counting_cell(cell).limits.timeout_s == cell.limits.timeout_s * counting.SLOWDOWN


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"device": "cuda"}, "CPU cells only"),
        ({"compile": "default"}, "eager cells only"),
        ({"task": "decode"}, "throughput cells only"),
    ],
)
def test_preflight_refuses_instructions_where_they_cannot_be_counted(fields, message):
    with pytest.raises(UserError, match=message):
        counting.check_cell(_cell(8).model_copy(update=fields), "suite.yaml")
    counting.check_cell(_cell(8), "suite.yaml")  # a CPU eager throughput cell is fine


def test_a_counting_worker_starts_counting_and_skips_priming(monkeypatch):
    """Each counted cell warms up at its own shape; priming under valgrind would only cost."""
    import gc

    from gam_bench.measure import memory
    from gam_bench.runner import worker

    monkeypatch.setattr(memory, "tune_malloc", lambda: True)  # leave this test process's malloc alone
    monkeypatch.setattr(worker, "_PROCESS_COLUMNS", {})
    primed = []
    monkeypatch.setattr(worker, "_prime", primed.append)
    for under_valgrind in (True, False):
        monkeypatch.setattr(worker, "_start_counting", lambda started=under_valgrind: started)
        try:
            worker.prepare("cpu", [])
        finally:
            gc.unfreeze()
    assert primed == ["cpu"]  # only the plain worker primed
