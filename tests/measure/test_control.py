"""The control kernel: a fixed matmul timed around each throughput cell (measure/control.py)."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_accelerator import FakeCuda  # noqa: E402

from gam_bench.measure.control import SIZE, Control  # noqa: E402


def test_each_sample_times_repeats_calls_of_the_same_matmul():
    control = Control("cpu", repeats=3)
    control.sample()
    control.sample()
    assert len(control.samples_ms) == 6 and all(t > 0 for t in control.samples_ms)
    assert control.median_ms == statistics.median(control.samples_ms)
    expected = control._a @ control._b  # (S, S)
    torch.testing.assert_close(control._c, expected)
    assert control._c.shape == (SIZE, SIZE)


def test_no_samples_no_median():
    assert Control("cpu").median_ms is None


def test_on_an_accelerator_every_timed_call_is_synchronised_on_the_cells_device(monkeypatch):
    fake = FakeCuda(devices=2).install(monkeypatch)
    control = Control("cpu", repeats=2)
    control.device = torch.device("cuda:1")  # tensors stay on the CPU; the sync goes to cuda:1
    control.sample()
    assert fake.syncs == [1, 1, 1, 1]  # before and after each of the 2 timed calls
