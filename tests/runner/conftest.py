"""Runner tests: test-only models live in faulty_models.py next to this file.

This folder goes on sys.path here; spawned workers inherit the parent's sys.path, and
subprocess CLI runs get it through PYTHONPATH (see `cli_env`).
"""

from __future__ import annotations

import os
import resource
import sys
import textwrap
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@pytest.fixture
def write_suite(tmp_path):
    """write_suite(body) -> path of a suite file with the test plugin and CPU defaults."""

    def write(body: str, name: str = "suite.yaml") -> Path:
        path = tmp_path / name
        path.write_text("plugins: [faulty_models]\ndevice: cpu\nthreads: 1\n" + textwrap.dedent(body))
        return path

    return write


@pytest.fixture
def cli_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO), env.get("PYTHONPATH", "")])
    return env


@pytest.fixture
def restore_process_limits():
    """run_cell sets the memory cap and thread count of the process it runs in."""
    limit, threads = resource.getrlimit(resource.RLIMIT_AS), torch.get_num_threads()
    yield
    resource.setrlimit(resource.RLIMIT_AS, limit)
    torch.set_num_threads(threads)
