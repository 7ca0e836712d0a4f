"""The guard in conftest.py: a file a test leaves in the checkout shows up in `checkout_state`
(and the session then fails); caches do not."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest


def _root_conftest():
    """tests/conftest.py itself (`import conftest` may find another folder's conftest)."""
    spec = importlib.util.spec_from_file_location("root_conftest", Path(__file__).with_name("conftest.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checkout_state_sees_new_files_but_not_caches(tmp_path):
    conftest = _root_conftest()

    if subprocess.run(["git", "--version"], capture_output=True).returncode != 0:
        pytest.skip("needs git")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("/results/*\n__pycache__/\n")
    before = conftest.checkout_state(tmp_path)
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.pyc").write_bytes(b"")
    assert conftest.checkout_state(tmp_path) == before
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "suite.json").write_text("{}")
    assert conftest.checkout_state(tmp_path) - before == {"!! results/"}
    assert conftest.checkout_state(tmp_path / "results" / "nowhere") is None
