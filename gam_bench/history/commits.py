"""The commits of a history and their order on the x-axis.

One point per commit, and one more for a commit measured on a modified tree (`git_dirty`:
`abc1234567+`, placed right after its commit). The order, best first:

1. **Topology**, when a git repository knows every commit (`--repo`, else the checkout the
   command runs in): `git rev-list --topo-order`, parents before children. Right even when
   commit times disagree (rebases, cherry-picks, skewed clocks).
2. **Commit time** (the rows' `git_commit_time`, else the repository's), when every commit
   has one.
3. **Measurement time** (the first row's `started_at`), the last resort: results of old
   commits re-measured today would come out in the wrong order, and the site says so.

Subjects (first line of the message) come from the repository when it knows the commit.
No torch here.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gam_bench.errors import UserError

BY_TOPOLOGY, BY_COMMIT_TIME, BY_MEASUREMENT = "git topology", "commit time", "measurement time"


@dataclass(frozen=True)
class Commit:
    """One point of the x-axis: a commit (dirty: measured on a tree modified from it)."""

    sha: str
    dirty: bool = False
    time: pd.Timestamp | None = None  # committer time, UTC
    measured: pd.Timestamp | None = None  # when its first row started
    subject: str = ""

    @property
    def key(self) -> str:
        return self.sha + ("+dirty" if self.dirty else "")

    @property
    def short(self) -> str:
        return self.sha[:10] + ("+" if self.dirty else "")


@dataclass(frozen=True)
class _Known:
    time: pd.Timestamp
    subject: str


def is_dirty(value: object) -> bool:
    """A row's `git_dirty` as a bool (null: not known to be modified)."""
    return bool(value) if isinstance(value, (bool, np.bool_)) else False


def commit_key(sha: object, dirty: object) -> str:
    """The key of the point a row belongs to (its commit, `+dirty` for a modified tree)."""
    return Commit(str(sha), is_dirty(dirty)).key


def order_commits(rows: pd.DataFrame, repo: Path | None) -> tuple[list[Commit], str]:
    """The commits of `rows` in order, and how they were ordered (`BY_*`)."""
    points = _points(rows)
    shas = sorted({sha for sha, _ in points})
    known, topo = _from_repo(repo, shas) if repo is not None else ({}, None)
    commits = []
    for (sha, dirty), group in points.items():
        info = known.get(sha)
        recorded = group["git_commit_time"].dropna()
        time = recorded.min() if len(recorded) else (info.time if info else None)
        measured = group["started_at"].dropna().min() if group["started_at"].notna().any() else None
        commits.append(Commit(sha, dirty, time, measured, info.subject if info else ""))
    if topo is not None:
        return sorted(commits, key=lambda c: (topo[c.sha], c.dirty)), BY_TOPOLOGY
    epoch = pd.Timestamp(0, tz="UTC")
    first = {}  # a commit's first measurement, its clean and modified points together
    for c in commits:
        first[c.sha] = min(first.get(c.sha, c.measured or epoch), c.measured or epoch)
    if all(c.time is not None for c in commits):
        return sorted(commits, key=lambda c: (c.time, first[c.sha], c.sha, c.dirty)), BY_COMMIT_TIME
    return sorted(commits, key=lambda c: (first[c.sha], c.sha, c.dirty)), BY_MEASUREMENT


def _points(rows: pd.DataFrame) -> dict[tuple[str, bool], pd.DataFrame]:
    dirty = rows["git_dirty"].map(is_dirty)
    return {(str(sha), bool(d)): group for (sha, d), group in rows.groupby([rows["git_sha"], dirty])}


def default_repo(start: Path) -> Path | None:
    """The git checkout holding `start`, or None (no git, or not in a checkout)."""
    proc = _git(["rev-parse", "--show-toplevel"], start)
    return Path(proc.stdout.strip()) if proc is not None and proc.returncode == 0 else None


def check_repo(path: Path) -> Path:
    """`--repo PATH`: the top of the git checkout at PATH (UserError when it is none)."""
    top = default_repo(path) if path.is_dir() else None
    if top is None:
        raise UserError(f"--repo: {path} is not a git checkout")
    return top


def _from_repo(repo: Path, shas: list[str]) -> tuple[dict[str, _Known], dict[str, int] | None]:
    """What `repo` knows of `shas` (time and subject), and their topological positions when it
    knows them all (else None)."""
    check = _git(["cat-file", "--batch-check"], repo, stdin="".join(f"{sha}^{{commit}}\n" for sha in shas))
    if check is None or check.returncode != 0:
        return {}, None
    found = [sha for sha, line in zip(shas, check.stdout.splitlines()) if not line.endswith(" missing")]
    known: dict[str, _Known] = {}
    if found:
        proc = _git(["show", "-s", "--format=%H%x1f%ct%x1f%s", *found], repo)
        for line in proc.stdout.splitlines() if proc is not None and proc.returncode == 0 else []:
            full, stamp, subject = (line.split("\x1f") + ["", ""])[:3]
            if stamp.isdigit():
                known[full] = _Known(pd.Timestamp(int(stamp), unit="s", tz="UTC"), subject)
    if len(found) < len(shas) or set(known) != set(shas):
        return known, None
    proc = _git(["rev-list", "--topo-order", "--reverse", *shas], repo)
    if proc is None or proc.returncode != 0:
        return known, None
    order = {sha: i for i, sha in enumerate(proc.stdout.split())}
    return known, {sha: order[sha] for sha in shas}


def _git(args: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
