"""Ordering the commits of a history: git topology, else commit time, else measurement time;
a commit measured on a modified tree comes right after its commit."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from gam_bench.errors import UserError
from gam_bench.history.commits import (
    BY_COMMIT_TIME,
    BY_MEASUREMENT,
    BY_TOPOLOGY,
    check_repo,
    commit_key,
    order_commits,
)

T = pd.Timestamp("2026-03-01T00:00:00Z")


def _rows(entries):
    """entries: (sha, dirty, commit time or None, started_at offset in minutes)."""
    return pd.DataFrame(
        [
            {"git_sha": sha, "git_dirty": dirty, "git_commit_time": when, "started_at": T + pd.Timedelta(minutes=m)}
            for sha, dirty, when, m in entries
        ]
    )


def _git(repo: Path, *args: str, date: str | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    if date:
        env.update(GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """Three commits whose committer dates run backwards (a rebase can leave that)."""
    path = tmp_path / "repo"
    path.mkdir()
    _git(path, "init", "-q")
    shas = []
    for i, date in enumerate(["2026-03-03T00:00:00Z", "2026-03-02T00:00:00Z", "2026-03-01T00:00:00Z"]):
        (path / "f").write_text(str(i))
        _git(path, "add", "f")
        _git(path, "commit", "-q", "-m", f"change {i}", date=date)
        shas.append(_git(path, "rev-parse", "HEAD"))
    return path, shas


def test_topology_wins_over_commit_times(repo):
    path, shas = repo
    rows = _rows([(shas[2], False, None, 0), (shas[0], False, None, 5), (shas[1], False, None, 9)])
    commits, how = order_commits(rows, path)
    assert how == BY_TOPOLOGY
    assert [c.sha for c in commits] == shas
    assert [c.subject for c in commits] == ["change 0", "change 1", "change 2"]
    assert commits[0].time == pd.Timestamp("2026-03-03T00:00:00Z")  # the repository's time, where rows have none


def test_a_commit_the_repo_does_not_know_falls_back_to_commit_time(repo):
    path, shas = repo
    rows = _rows([(shas[0], False, T + pd.Timedelta(days=9), 0), ("f" * 40, False, T, 1)])
    commits, how = order_commits(rows, path)
    assert how == BY_COMMIT_TIME
    assert [c.sha for c in commits] == ["f" * 40, shas[0]]


def test_commit_time_orders_without_a_repo():
    rows = _rows([("b" * 40, False, T + pd.Timedelta(hours=2), 0), ("a" * 40, False, T, 30)])
    commits, how = order_commits(rows, None)
    assert how == BY_COMMIT_TIME
    assert [c.sha[0] for c in commits] == ["a", "b"]


def test_measurement_time_is_the_last_resort():
    rows = _rows([("b" * 40, False, T, 30), ("a" * 40, False, None, 10), ("c" * 40, False, None, 20)])
    commits, how = order_commits(rows, None)
    assert how == BY_MEASUREMENT
    assert [c.sha[0] for c in commits] == ["a", "c", "b"]


def test_a_dirty_tree_is_its_own_point_after_its_commit():
    rows = _rows([("a" * 40, True, T, 0), ("a" * 40, False, T, 5), ("b" * 40, None, T + pd.Timedelta(hours=1), 1)])
    commits, _ = order_commits(rows, None)
    assert [c.key for c in commits] == ["a" * 40, "a" * 40 + "+dirty", "b" * 40]
    assert commits[1].short == "a" * 10 + "+"
    assert commit_key("b" * 40, None) == "b" * 40  # null: not known to be modified


def test_repo_option_must_be_a_checkout(tmp_path):
    with pytest.raises(UserError, match="--repo: .* is not a git checkout"):
        check_repo(tmp_path)
