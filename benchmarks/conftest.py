"""pytest-benchmark micro-benchmarks of every registered block (not part of the default `pytest` run).

    pytest benchmarks/ --benchmark-autosave                         # record a run in .benchmarks/
    pytest benchmarks/ --benchmark-compare --benchmark-compare-fail=median:10%   # vs the last saved run

Threads are pinned (GAM_BENCH_BENCH_THREADS, default 1) so saved runs compare like with like;
one thread because multi-thread CPU timings swing wildly on a busy machine.
"""

from __future__ import annotations

import os

import pytest
import torch

THREADS = int(os.environ.get("GAM_BENCH_BENCH_THREADS", "1"))


def pytest_configure(config: pytest.Config) -> None:
    torch.set_num_threads(THREADS)


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """Saved runs record the torch version and thread count next to pytest-benchmark's CPU info."""
    machine_info["torch"] = torch.__version__
    machine_info["torch_threads"] = torch.get_num_threads()
