"""Session-wide test settings: the gam-bench cache (calibration, tokenizers) lives in a
temporary folder, so tests never read or write the user's ~/.cache/gam-bench. Tests that
need their own cache still set GAM_BENCH_CACHE themselves (monkeypatch). The compiled CPU
kernels (models/cpu_scan.py) get their own session folder, GAM_BENCH_KERNEL_CACHE, so a test
that swaps GAM_BENCH_CACHE does not make its worker processes build them again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _session_cache(tmp_path_factory: pytest.TempPathFactory):
    names = ("GAM_BENCH_CACHE", "GAM_BENCH_KERNEL_CACHE")
    before = {name: os.environ.get(name) for name in names}
    for name in names:
        os.environ[name] = str(tmp_path_factory.mktemp(name.lower()))
    yield
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


# ---------------------------------------------------------------- the checkout stays as it was

REPO = Path(__file__).resolve().parents[1]
_SCRATCH = ("__pycache__", ".pytest_cache", ".egg-info", ".venv/", "site/")  # caches and build outputs


def checkout_state(repo: Path = REPO) -> set[str] | None:
    """`git status` of the checkout, tracked changes and untracked or ignored paths, less caches;
    None outside a git checkout."""
    if not (repo / ".git").exists():
        return None
    result = subprocess.run(
        ["git", "status", "--porcelain", "--ignored"], cwd=repo, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        return None
    return {line for line in result.stdout.splitlines() if not any(s in line for s in _SCRATCH)}


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config._checkout_before = checkout_state()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Tests write only to temporary folders: fail the run if the checkout changed under it."""
    before = getattr(session.config, "_checkout_before", None)
    after = checkout_state() if before is not None else None
    if before is None or after is None or after <= before:
        return
    new = sorted(after - before)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    text = "tests changed the checkout (write to tmp_path instead): " + ", ".join(new)
    if reporter is not None:
        reporter.write_line(text, red=True)
    else:
        print(text, file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
