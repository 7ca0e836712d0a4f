"""Every accelerator branch of gam_bench.measure, run on the CPU through the fake CUDA device."""

from __future__ import annotations

import pytest
import torch
from fake_accelerator import GiB

from gam_bench.measure import memory, timing


def test_fake_refuses_what_torch_refuses(fake_cuda):
    with pytest.raises(ValueError, match="specified index"):
        torch.cuda.set_per_process_memory_fraction(0.5, torch.device("cuda"))
    with pytest.raises(TypeError):
        torch.cuda.set_per_process_memory_fraction(1, torch.device("cuda", 0))
    with pytest.raises(ValueError, match="doesn't match"):
        torch.accelerator.synchronize(torch.device("cpu"))
    torch.cuda.set_per_process_memory_fraction(0.5, torch.device("cuda", 0))
    assert fake_cuda.fraction == 0.5


def test_the_real_torch_refuses_an_index_less_device_too():
    """The fake's rule is torch's: torch.cuda's index check rejects torch.device('cuda')."""
    from torch.cuda._utils import _get_device_index

    with pytest.raises(ValueError):
        _get_device_index(torch.device("cuda"), optional=False)


@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_apply_cap_sets_the_fraction_on_an_indexed_device(fake_cuda, device):
    memory.apply_cap(torch.device(device), 40 * GiB)
    assert fake_cuda.fraction == pytest.approx(0.5)


def test_apply_cap_clamps_to_one(fake_cuda):
    memory.apply_cap(torch.device("cuda"), 500 * GiB)
    assert fake_cuda.fraction == 1.0


def test_cap_bytes_on_accelerator_is_a_fraction_of_total(fake_cuda):
    assert memory.cap_bytes(None, 0.25, torch.device("cuda")) == 20 * GiB
    assert memory.cap_bytes(3.0, 0.25, torch.device("cuda")) == 3 * GiB


def test_peak_memory_on_accelerator(fake_cuda):
    fake_cuda.allocated = fake_cuda.peak = 5 * GiB
    meter = memory.PeakMemory(torch.device("cuda"))
    assert meter.source == "cuda_allocator"
    meter.start()
    assert fake_cuda.peak == 5 * GiB  # reset to current
    fake_cuda.peak = 7 * GiB
    assert meter.peak_bytes() == 2 * GiB
    assert fake_cuda.syncs == [0]


def test_device_memory_at_start(fake_cuda):
    cols = memory.device_memory_at_start(torch.device("cuda"))
    assert cols == {"device_mem_free_bytes": 70 * GiB, "device_mem_total_bytes": 80 * GiB}


def test_device_memory_at_start_cpu():
    cols = memory.device_memory_at_start(torch.device("cpu"))
    assert cols["device_mem_total_bytes"] == memory.total_ram_bytes()
    assert 0 < cols["device_mem_free_bytes"] <= cols["device_mem_total_bytes"]


def test_wait_for_release_waits_until_memory_is_back(fake_cuda):
    fake_cuda.free_readings = [10 * GiB, 30 * GiB, 69.9 * GiB]
    reader = lambda: torch.accelerator.get_memory_info("cuda")[0]  # noqa: E731
    released, free = memory.wait_for_release(70 * GiB, reader, timeout_s=5, poll_s=0)
    assert released and free == int(69.9 * GiB)
    assert fake_cuda.free_readings == []


def test_wait_for_release_waits_for_the_process(fake_cuda):
    alive = iter([True, True, False])
    released, _ = memory.wait_for_release(1, lambda: 2, process_alive=lambda: next(alive), timeout_s=5, poll_s=0)
    assert released


def test_wait_for_release_gives_up_after_the_timeout():
    released, free = memory.wait_for_release(70 * GiB, lambda: GiB, timeout_s=0.05, poll_s=0.01)
    assert not released and free == GiB


def test_free_memory_reader_falls_back_to_torch(fake_cuda, monkeypatch):
    from gam_bench.measure import provenance

    monkeypatch.setattr(provenance, "nvml_memory_info", lambda index: None)
    assert memory.free_memory_reader(torch.device("cuda"))() == 70 * GiB


def test_cpu_timing_never_touches_the_accelerator(fake_cuda):
    """A CPU cell on a GPU machine: no sync, no context (torch.utils.benchmark's clock syncs any)."""
    timing.warm_up(lambda: None, 2, torch.device("cpu"))
    t = timing.time_steps(lambda: None, repeats=3, device=torch.device("cpu"))
    assert len(t.samples_ms) == 3 and t.device_samples_ms is None
    assert fake_cuda.syncs == []
    assert not torch.cuda.is_initialized()


def test_cpu_timing_without_a_device_argument_never_touches_the_accelerator(fake_cuda):
    timing.warm_up(lambda: None, 2)
    timing.time_steps(lambda: None, repeats=3)
    assert fake_cuda.syncs == [] and not torch.cuda.is_initialized()


def test_accelerator_timing_syncs_its_device_and_records_events(fake_cuda):
    timing.warm_up(lambda: None, 1, "cuda")
    assert fake_cuda.syncs == [0]
    t = timing.time_steps(lambda: None, repeats=4, device=torch.device("cuda"))
    assert len(t.samples_ms) == 4
    assert t.device_samples_ms == pytest.approx([1.5] * 4)  # one begin/end pair per step
    assert t.device_median_ms == pytest.approx(1.5)
    assert fake_cuda.syncs == [0] * (1 + 2 * 4)  # before and after every step


def test_timing_with_no_device_follows_an_initialised_accelerator(fake_cuda):
    fake_cuda.initialized = True
    timing.time_steps(lambda: None, repeats=2)
    assert fake_cuda.syncs == [0] * 4
