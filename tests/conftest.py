"""Session-wide test settings: the gam-bench cache (calibration, tokenizers) lives in a
temporary folder, so tests never read or write the user's ~/.cache/gam-bench. Tests that
need their own cache still set GAM_BENCH_CACHE themselves (monkeypatch)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _session_cache(tmp_path_factory: pytest.TempPathFactory):
    before = os.environ.get("GAM_BENCH_CACHE")
    os.environ["GAM_BENCH_CACHE"] = str(tmp_path_factory.mktemp("gam-bench-cache"))
    yield
    if before is None:
        os.environ.pop("GAM_BENCH_CACHE", None)
    else:
        os.environ["GAM_BENCH_CACHE"] = before
