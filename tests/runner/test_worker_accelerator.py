"""The worker's accelerator branches, run on the CPU through the fake CUDA device
(tests/measure/fake_accelerator.py), and a CPU cell on a "GPU machine" that must never touch it.

The fake checks arguments the way torch does (an index-less device is refused where torch
refuses it; an index beyond the devices is an invalid ordinal) and records every sync, every
event's device and whether anything initialised the device (a CUDA context).
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest
import torch

MEASURE_TESTS = Path(__file__).resolve().parents[1] / "measure"
if str(MEASURE_TESTS) not in sys.path:
    sys.path.insert(0, str(MEASURE_TESTS))

from fake_accelerator import FakeCuda, GiB  # noqa: E402

from gam_bench import tasks  # noqa: E402
from gam_bench.cell import expand  # noqa: E402
from gam_bench.measure import provenance  # noqa: E402
from gam_bench.measure.timing import time_steps  # noqa: E402
from gam_bench.runner import worker  # noqa: E402
from gam_bench.suite import suite_from_dict  # noqa: E402
from gam_bench.tasks.throughput import measure as throughput  # noqa: E402

throughput_task = tasks.throughput  # the task package (its `_PRIMED` set)

CLOCKS = {"clocks.sm": 1980.0, "clocks.mem": 2619.0, "clocks.max.sm": 1980.0, "power.limit": 700.0}


@pytest.fixture
def fake_cuda(monkeypatch) -> FakeCuda:
    return FakeCuda(devices=2).install(monkeypatch)


def _cell(model="test-tiny", device="cpu", mode="forward_backward", **overrides):
    suite = suite_from_dict(
        {
            "name": "acc",
            "plugins": ["faulty_models"],
            "models": [{"name": model, "overrides": overrides}],
            "axes": {"seq_len": [8], "batch_size": [2]},
            "level": "block",
            "mode": mode,
            "device": "cpu",
            "measure": {"warmup": 1, "repeats": 3},
            "limits": {"mem_cap_gb": 40},
        }
    )
    return expand(suite, "cpu", threads=1)[0].model_copy(update={"device": device})


@pytest.mark.parametrize("model", ["test-tiny", "transformer", "mamba"])
def test_a_cpu_cell_on_a_gpu_machine_never_touches_the_accelerator(fake_cuda, restore_process_limits, model):
    """Timing, memory (cap, meter, empty_cache), provenance and the counted step of a CPU cell
    call no accelerator API: no sync, no event, no memory fraction, no context."""
    overrides = {"d_model": 16, "n_layers": 1} if model != "test-tiny" else {}
    result = worker.run_cell(_cell(model, **overrides), ctx=None)
    assert result["status"] == "ok", result["error"]
    (row,) = result["rows"]
    assert fake_cuda.syncs == [] and fake_cuda.event_devices == [] and fake_cuda.fraction is None
    assert not fake_cuda.initialized and not torch.cuda.is_initialized()
    assert row["mem_source"] == "rss_hwm" and row["peak_rss_bytes"] == row["peak_mem_bytes"]
    assert row["device_time_ms"] is None and row["device_time_samples_ms"] is None
    assert "cudnn_enabled" not in row and "gpu_sm_clock_mhz" not in row  # provenance is for accelerators
    assert row["device_mem_total_bytes"] > 0


def _fake_task(fake: FakeCuda, calls: list):
    """A throughput task that runs no model (tensors cannot go to a fake device): it times a
    no-op step on the cell's device through the throughput task's own timing, and allocates
    3 GiB on the fake allocator."""

    def run(cell, ctx=None):
        calls.append(cell.seq_len)
        fake.peak = fake.allocated + 3 * GiB
        timing = throughput.timed_steps(lambda: None, cell, torch.device(cell.device))
        return [throughput.timing_columns(timing)]

    return run


@pytest.mark.parametrize(("device", "index"), [("cuda", 0), ("cuda:0", 0), ("cuda:1", 1)])
def test_an_accelerator_cell_runs_every_worker_branch(fake_cuda, monkeypatch, device, index):
    calls: list[int] = []
    monkeypatch.setattr(throughput_task, "_PRIMED", set())
    task = _fake_task(fake_cuda, calls)
    monkeypatch.setattr(throughput, "run", task)  # what the task runs, also in the worker's priming step
    monkeypatch.setattr(provenance, "_gpu_query", lambda i: CLOCKS if i == index else None)
    fake_cuda.allocated = 1 * GiB
    result = worker.run_cell(_cell(device=device), ctx=None)
    assert result["status"] == "ok", result["error"]
    (row,) = result["rows"]
    assert calls == [8, 8]  # the priming step at min(seq_len, 16), then the cell
    assert fake_cuda.fraction == pytest.approx(0.5)  # 40 GiB of 80, set on an indexed device
    assert fake_cuda.syncs and set(fake_cuda.syncs) == {index}  # only the cell's own device
    assert set(fake_cuda.event_devices) == {index}
    assert row["device_mem_free_bytes"] == 70 * GiB and row["device_mem_total_bytes"] == 80 * GiB
    assert row["mem_source"] == "cuda_allocator" and row["peak_mem_bytes"] == 3 * GiB
    assert "peak_rss_bytes" not in row
    assert row["device_time_ms"] == pytest.approx(1.5) and len(row["device_time_samples_ms"]) == 3
    assert row["gpu_sm_clock_mhz"] == 1980.0 and row["gpu_power_limit_w"] == 700.0
    assert row["cudnn_enabled"] == torch.backends.cudnn.enabled
    assert row["float32_matmul_precision"] == torch.get_float32_matmul_precision()
    assert result["env"]["device_name"] == "Fake GPU"


def test_an_accelerator_oom_row_keeps_the_memory_free_at_cell_start(fake_cuda, monkeypatch):
    def oom(cell, ctx=None):
        raise torch.OutOfMemoryError("CUDA out of memory (fake)")

    monkeypatch.setattr(throughput, "run", oom)
    fake_cuda.free = 12 * GiB
    result = worker.run_cell(_cell(device="cuda"), ctx=None)
    assert result["status"] == "oom"
    (row,) = result["rows"]
    assert row["device_mem_free_bytes"] == 12 * GiB and row["device_mem_total_bytes"] == 80 * GiB
    assert "time_ms" not in row


def test_the_fake_refuses_a_device_that_does_not_exist(fake_cuda):
    with pytest.raises(RuntimeError, match="invalid device ordinal"):
        time_steps(lambda: None, 1, device="cuda:2")


def test_prepare_records_malloc_and_freezes_the_start_up_objects(monkeypatch):
    from gam_bench.measure import memory

    monkeypatch.setattr(memory, "tune_malloc", lambda: True)  # leave this test process's malloc alone
    monkeypatch.setattr(worker, "_PROCESS_COLUMNS", {})
    try:
        env = worker.prepare("cpu", [])
        assert gc.get_freeze_count() > 0  # the per-cell gc.collect() skips what start-up created
    finally:
        gc.unfreeze()
    assert env["malloc_tuned"] is True
    assert {"device_name", "torch_version", "threads"} <= set(env)
