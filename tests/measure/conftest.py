"""Measure-layer tests: `fake_cuda` installs a fake CUDA device (see fake_accelerator.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from fake_accelerator import FakeCuda  # noqa: E402


@pytest.fixture
def fake_cuda(monkeypatch) -> FakeCuda:
    return FakeCuda().install(monkeypatch)
