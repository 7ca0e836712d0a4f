"""Every row carries its commit: git_sha, and (schema 7) the commit's time and whether the
tree was modified, as `git` itself says for this checkout."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from gam_bench import store
from gam_bench.measure import environment

REPO = Path(__file__).resolve().parents[2]


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()


def test_environment_records_the_commit_time_and_state():
    if subprocess.run(["git", "rev-parse"], cwd=REPO, capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    env = environment.environment("cpu")
    assert env["git_sha"] == _git("rev-parse", "HEAD")
    assert env["git_commit_time"] == pd.Timestamp(int(_git("show", "-s", "--format=%ct", "HEAD")), unit="s", tz="UTC")
    assert env["git_dirty"] is bool(_git("status", "--porcelain", "--untracked-files=no"))


def test_the_columns_round_trip_through_the_store(tmp_path):
    when = pd.Timestamp("2026-01-02T03:04:05Z")
    store.append(
        [{"cell_id": "c", "status": "ok", "git_sha": "a" * 40, "git_commit_time": when, "git_dirty": True}], tmp_path
    )
    row = store.load(tmp_path).iloc[0]
    assert (row["git_commit_time"], row["git_dirty"]) == (when, True)
    assert row["schema_version"] == store.SCHEMA_VERSION >= 7  # the columns came with version 7
