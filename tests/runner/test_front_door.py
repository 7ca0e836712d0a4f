"""What a new user meets around a sweep: a second run says the cells are stored and how to
measure again; --out keeps the report beside the rows; Ctrl-C says what is stored where and
that the same command resumes, with no traceback from two threads closing one worker; the
progress line and summary label their memory numbers; tables keep whole model names."""

from __future__ import annotations

import io
import multiprocessing
import threading

import pytest
from cells import make_cell
from rich.console import Console

from gam_bench import store
from gam_bench.cli.main import main
from gam_bench.errors import SweepInterrupted
from gam_bench.runner import local as local_module
from gam_bench.runner import run_suite
from gam_bench.runner.executor import Slot
from gam_bench.runner.local import LocalExecutor
from gam_bench.runner.progress import SweepProgress, memory_text, summary_table

SUITE = """
name: front-door
models: [test-pid]
axes: {seq_len: [4, 8], batch_size: 1}
level: block
mode: forward
measure: {warmup: 1, repeats: 2, flops: false}
calibrate: false
limits: {timeout_s: 60}
"""


def _console() -> tuple[Console, io.StringIO]:
    text = io.StringIO()
    return Console(file=text, width=200), text


@pytest.mark.slow
def test_second_run_says_the_cells_are_stored_and_how_to_measure_again(write_suite, tmp_path):
    path, out = write_suite(SUITE), tmp_path / "rows"
    run_suite(path, out=out, report=False, console=_console()[0])
    console, text = _console()
    run_suite(path, out=out, report=False, console=console)
    said = text.getvalue()
    assert f"nothing to run: all 2 cells are already stored ok in {out}; add --fresh to measure them again" in said
    assert "0 cells run" not in said and len(store.load(out)) == 2


@pytest.mark.slow
def test_out_keeps_the_report_beside_its_rows(write_suite, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_suite(SUITE)
    for name in ("a", "b"):
        main(["run", str(path), "--out", name, "--no-progress"])
    assert (tmp_path / "a" / "report" / "report.md").is_file() and (tmp_path / "b" / "report" / "report.md").is_file()
    assert not (tmp_path / "reports").exists()
    assert len(store.load(tmp_path / "a")) == 2  # the report's files are not rows


def test_interrupted_sweep_names_what_is_stored_and_how_to_resume(monkeypatch, tmp_path, capsys):
    from gam_bench.runner import runner

    cells = [make_cell(seq_len=n) for n in (4, 8, 16)]
    monkeypatch.setattr(store, "done_cell_ids", lambda folder: {cells[0].cell_id, "another-suites-cell"})
    text = runner._interrupted_text(tmp_path, cells)
    assert text == (
        f"interrupted: 1 of 3 cells are stored in {tmp_path}; run the same command to resume "
        "(cells stored ok are not run again)"
    )

    def interrupted(args):
        raise SweepInterrupted(text)

    from gam_bench.cli import main as cli

    monkeypatch.setattr(cli, "build_parser", _parser_with(interrupted))
    assert cli.main(["run", "x.yaml"]) == 130
    assert capsys.readouterr().err == f"gam-bench: {text}\n"


def _parser_with(func):
    import argparse

    def build():
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        sub.add_parser("run").add_argument("suite")
        parser.set_defaults(func=func)
        return parser

    return build


class _RacyConnection:
    """A pipe end whose close lets a second thread in before it finishes (what Ctrl-C did:
    the sweep's close and the cell's thread both ended the worker), and fails if closed twice."""

    def __init__(self) -> None:
        self.closes = 0
        self.gate = threading.Barrier(2, timeout=1)

    def close(self) -> None:
        self.closes += 1
        try:
            self.gate.wait()  # both threads inside close() at once, if both got in
        except threading.BrokenBarrierError:
            pass
        if self.closes > 1:
            raise OSError(9, "Bad file descriptor")


class _DeadProcess:
    pid = 0

    def is_alive(self) -> bool:
        return False

    def join(self, timeout=None) -> None:
        return None

    def kill(self) -> None:
        return None


def test_two_threads_ending_one_worker_close_its_pipe_once():
    executor = LocalExecutor(device="cpu", plugins=[])
    worker = object.__new__(local_module._Worker)
    worker.conn, worker.process = _RacyConnection(), _DeadProcess()
    worker._close_lock, worker._closed = threading.Lock(), False
    slot = Slot()
    slot.worker, slot.busy = worker, True
    errors: list[BaseException] = []

    def end() -> None:
        try:
            executor.kill(slot)
        except BaseException as exc:  # noqa: BLE001 - what a thread raised is the finding
            errors.append(exc)

    threads = [threading.Thread(target=end) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and worker.conn.closes == 1
    executor.kill(slot)  # and again later: still nothing
    assert worker.conn.closes == 1
    assert not multiprocessing.active_children()


def test_progress_line_and_summary_label_both_memory_numbers():
    row = {
        "status": "ok",
        "model": "transformer-naive",
        "level": "block",
        "mode": "forward_backward",
        "dtype": "float32",
        "batch_size": 1,
        "seq_len": 8192,
        "time_ms": 2085.0,
        "tokens_per_s": 3929.0,
        "peak_tensor_bytes": 846 * 2**20,
        "peak_mem_bytes": 2617 * 2**20,
        "mem_source": "rss_hwm",
    }
    console = Console(width=200, record=True)
    with SweepProgress(1, console) as bar:
        bar.finish(make_cell(model="transformer-naive"), row)
    assert "2085.00 ms  tensors 846 MiB  rss 2617 MiB" in console.export_text()
    table = Console(width=200, record=True)
    table.print(summary_table([row], "t"))
    text = table.export_text()
    assert "tensor MiB" in text and "rss MiB" in text and "│        846 │" in text
    gpu = {**row, "mem_source": "cuda_allocator"}
    assert memory_text(gpu) == "tensors 846 MiB  allocator 2617 MiB"


def test_summary_keeps_whole_model_names_at_80_columns():
    rows = [
        {
            "status": "ok",
            "model": name,
            "level": "block",
            "mode": "forward_backward",
            "dtype": "float32",
            "batch_size": 1,
            "seq_len": 8192,
            "time_ms": 601.0,
            "tokens_per_s": 13630.0,
            "peak_tensor_bytes": 42 * 2**20,
            "peak_mem_bytes": 120 * 2**20,
            "mem_source": "rss_hwm",
        }
        for name in ("transformer", "transformer-naive", "mamba-paper")
    ]
    console = Console(width=80, record=True)
    console.print(summary_table(rows, "scaling: 3 cells run, results in results/scaling"))
    lines = console.export_text().splitlines()
    for name in ("transformer", "transformer-naive", "mamba-paper"):
        assert any(line.startswith(f"│ {name} ") for line in lines), name
    assert "…" not in "".join(line.split("│")[1] for line in lines if line.startswith("│"))
