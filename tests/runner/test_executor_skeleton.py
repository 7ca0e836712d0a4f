"""The executor skeleton without processes: worker reuse, merging a cell's rows over processes
(`measure.processes`; the passes themselves are the runner's: tests/runner/test_passes.py),
the wait for a failed accelerator worker's memory, and the release note on the next outcome.
`Scripted` is an in-process executor whose "workers" answer each cell from a script; the
local executor's own wait is tested on the fake CUDA device."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

import pytest
from cells import make_cell

from gam_bench.runner import executor as executor_module
from gam_bench.runner.executor import Executor, Slot
from gam_bench.runner.local import LocalExecutor, nvml_index
from gam_bench.runner.processes import merge_rows
from gam_bench.settings import Measure

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "measure"))
from fake_accelerator import FakeCuda, GiB  # noqa: E402


def _result(samples: list[float], status: str = "ok", free: int | None = None) -> dict[str, Any]:
    rows = [
        {
            "time_ms": statistics.median(samples),
            "time_samples_ms": samples,
            "tokens_per_s": 1000 / statistics.median(samples),
        }
    ]
    env = {"threads": 1, "load_avg_1m": 0.5}
    if free is not None:
        env["device_mem_free_bytes"] = free
    return {
        "status": status,
        "error": None if status == "ok" else "ValueError: boom",
        "rows": rows if status == "ok" else [],
        "env": env,
        "started_at": None,
        "duration_s": 0.25,
    }


class Scripted(Executor):
    """Worker n (n = 0, 1, ...) answers its cells with `script[n]` in order; "hang" never answers."""

    name = "scripted"

    def __init__(self, script: list[list[Any]], device: str = "cpu") -> None:
        self.script, self.started, self.killed, self.waits = script, 0, 0, []
        super().__init__(device, [])

    def start(self, slot: Slot, cell) -> tuple[str, Any]:
        slot.worker, slot.pid = list(self.script[self.started]), 1000 + self.started
        self.started += 1
        return "ready", {"threads": 1}

    def reusable(self, slot: Slot, cell) -> bool:
        return True

    def load(self, slot: Slot) -> float | None:
        return 0.5

    def submit(self, slot: Slot, cell) -> Any:
        return slot.worker.pop(0)

    def poll(self, handle: Any, wait_s: float):
        return [], (None if handle == "hang" else ("result", handle))

    def kill(self, slot: Slot) -> None:
        self.killed += 1

    def wait_release(self, slot: Slot, cell, free_before: int | None) -> dict[str, Any]:
        self.waits.append(free_before)
        return {"release_wait_s": 30.0, "release_ok": False}


def _cell(processes: int = 1, device: str = "cpu", **fields: Any):
    return make_cell(measure=Measure(warmup=0, repeats=2, processes=processes), device=device, **fields)


def test_one_process_keeps_reusing_its_worker():
    ex = Scripted([[_result([1.0]), _result([2.0])]])
    assert ex.run(_cell()).status == "ok" and ex.run(_cell()).status == "ok"
    assert ex.started == 1


def test_rows_without_samples_are_an_error_not_a_silent_first_process():
    row = {"val_ppl": 3.0}
    with pytest.raises(ValueError, match="time_samples_ms"):
        merge_rows([[row], [row]], [1, 2])


def test_merge_takes_the_largest_peak_and_all_device_samples():
    a = {"time_samples_ms": [1.0], "peak_mem_bytes": 10, "device_time_samples_ms": [0.5], "flops": 2e6}
    b = {"time_samples_ms": [3.0], "peak_mem_bytes": 30, "device_time_samples_ms": [1.5], "flops": 2e6}
    (row,) = merge_rows([[a], [b]], [1, 2])
    assert row["peak_mem_bytes"] == 30 and row["device_time_samples_ms"] == [0.5, 1.5]
    assert row["device_time_ms"] == 1.0 and row["flops_per_s"] == pytest.approx(2e6 / 2e-3)


def test_merge_takes_the_median_control_of_the_processes():
    rows = [{"time_samples_ms": [1.0], "control_ms": c} for c in (0.5, 0.9, 0.4)]
    (row,) = merge_rows([[r] for r in rows], [1, 2, 3])
    assert row["control_ms"] == 0.5


def test_a_failed_accelerator_cell_waits_for_release_and_the_next_cell_says_so():
    ex = Scripted([[_result([1.0], status="oom", free=50 * GiB)], [_result([1.0], status="oom")]], device="cuda")
    first = ex.run(_cell(device="cuda"))
    assert first.status == "oom" and ex.waits == [50 * GiB]  # free memory at the failed cell's start
    assert "release_ok" not in first.env and first.error == "ValueError: boom"  # the note is the next cell's
    second = ex.run(_cell(device="cuda"))
    assert second.env["release_ok"] is False and second.env["release_wait_s"] == 30.0
    assert "device memory was not released" in second.error


def test_the_release_note_survives_a_fresh_pool():
    """A search probe or a pass after a failed accelerator cell runs in a fresh pool (`resize`):
    the wait's columns still reach the next cell."""
    ex = Scripted([[_result([1.0], status="oom", free=50 * GiB)], [_result([1.0], status="oom")]], device="cuda")
    assert ex.run(_cell(device="cuda")).status == "oom" and ex.waits == [50 * GiB]
    ex.resize(1)
    second = ex.run(_cell(device="cuda"))
    assert second.env["release_ok"] is False and second.env["release_wait_s"] == 30.0


def test_a_timed_out_accelerator_cell_waits_too_and_cpu_cells_never_do():
    ex = Scripted([["hang"], [_result([1.0])]], device="cuda")
    cell = _cell(device="cuda", limits={"timeout_s": 0.01})
    assert ex.run(cell).status == "timeout" and len(ex.waits) == 1
    ok = ex.run(_cell(device="cuda"))
    assert ok.status == "ok" and ok.env["release_ok"] is False and ok.error is None  # an ok row keeps no error
    cpu = Scripted([["hang"]])
    assert cpu.run(_cell(limits={"timeout_s": 0.01})).status == "timeout" and cpu.waits == []


class _DeadProcess:
    def __init__(self, alive_polls: int = 0) -> None:
        self.alive_polls = alive_polls

    def is_alive(self) -> bool:
        self.alive_polls -= 1
        return self.alive_polls >= 0


def _local_slot(process: _DeadProcess) -> Slot:
    return Slot(worker=type("W", (), {"process": process})())


def _nvml(readings: list[int], total: int = 80 * GiB):
    """nvml_memory_info with these free readings in turn (the last one repeats)."""

    def read(index: int = 0):
        assert index == 0
        return (readings.pop(0) if len(readings) > 1 else readings[0]), total

    return read


def test_local_wait_release_reads_nvml_until_memory_is_back_without_a_cuda_context(fake_cuda, monkeypatch):
    readings = [10 * GiB, 10 * GiB, 20 * GiB, 50 * GiB]
    monkeypatch.setattr("gam_bench.measure.provenance.nvml_memory_info", _nvml(readings))
    ex = LocalExecutor.__new__(LocalExecutor)  # no pool: only wait_release is used
    columns = ex.wait_release(_local_slot(_DeadProcess(alive_polls=1)), _cell(device="cuda"), 50 * GiB)
    assert columns["release_ok"] is True and readings == [50 * GiB]  # read until it came back
    assert not fake_cuda.initialized  # the parent never touched CUDA
    monkeypatch.setattr(executor_module, "RELEASE_TIMEOUT_S", 0.2)
    monkeypatch.setattr("gam_bench.measure.provenance.nvml_memory_info", _nvml([10 * GiB]))
    columns = ex.wait_release(_local_slot(_DeadProcess()), _cell(device="cuda"), 50 * GiB)
    assert columns["release_ok"] is False and columns["release_wait_s"] >= 0.2
    assert not fake_cuda.initialized


def test_local_wait_release_without_nvml_or_a_reading_waits_for_the_exit_only(fake_cuda, monkeypatch):
    monkeypatch.setattr("gam_bench.measure.provenance.nvml_memory_info", lambda index=0: None)
    fake_cuda.free = 1 * GiB
    ex = LocalExecutor.__new__(LocalExecutor)
    process = _DeadProcess(alive_polls=2)
    assert ex.wait_release(_local_slot(process), _cell(device="cuda"), 50 * GiB)["release_ok"] is True
    assert process.alive_polls < 0 and not fake_cuda.initialized  # it waited for the exit, read no memory
    monkeypatch.setattr("gam_bench.measure.provenance.nvml_memory_info", _nvml([1 * GiB]))
    assert ex.wait_release(_local_slot(_DeadProcess()), _cell(device="cuda"), None)["release_ok"] is True


def test_nvml_index_follows_cuda_visible_devices(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert nvml_index("cuda") == 0 and nvml_index("cuda:1") == 1 and nvml_index("cpu") is None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    assert nvml_index("cuda") == 3 and nvml_index("cuda:1") == 1 and nvml_index("cuda:2") is None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-6f1c")
    assert nvml_index("cuda") is None


@pytest.fixture
def fake_cuda(monkeypatch) -> FakeCuda:
    return FakeCuda().install(monkeypatch)
