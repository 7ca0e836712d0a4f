"""Measure a suite at another git revision and at the working tree, interleaved.

Times from one machine at different moments do not compare: a shared VM's speed drifts by
tens of percent within hours, and not uniformly across workloads. The trustworthy regression
check therefore measures both sides now, on this machine, alternating: base, head, base,
head, ... so a drift hits both alike. The base revision is checked out into a temporary
`git worktree` and run from there in a subprocess (its own `gam_bench` first on
PYTHONPATH, its own copy of the suite file); the head is the code that imports this module.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from gam_bench.errors import UserError


def repo_root(start: Path) -> Path:
    """The top of the git checkout holding `start` (UserError outside one)."""
    proc = _git(["rev-parse", "--show-toplevel"], cwd=start)
    if proc.returncode != 0:
        raise UserError(f"--against: {start.resolve()} is not inside a git checkout ({_first_line(proc.stderr)})")
    return Path(proc.stdout.strip())


def resolve_commit(root: Path, rev: str) -> str:
    """The full SHA of `rev` (UserError naming it when git does not know it)."""
    proc = _git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=root)
    if proc.returncode != 0:
        raise UserError(f"--against: {rev!r} is not a commit of the git repository at {root}")
    return proc.stdout.strip()


@contextlib.contextmanager
def worktree(root: Path, sha: str) -> Iterator[Path]:
    """A detached checkout of `sha` in a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="gam-bench-base-") as tmp:
        path = Path(tmp) / "worktree"
        proc = _git(["worktree", "add", "--detach", "--quiet", str(path), sha], cwd=root)
        if proc.returncode != 0:
            raise UserError(f"--against: cannot check out {sha[:12]} ({_first_line(proc.stderr)})")
        try:
            yield path
        finally:
            _git(["worktree", "remove", "--force", str(path)], cwd=root)


def run_interleaved(
    suite: Path,
    rev: str,
    rounds: list[tuple[Path, Path]],
    run_head: Callable[[Path], object],
) -> str | None:
    """Run `suite` at `rev` and at the working tree, alternating: one (base folder, head
    folder) pair per round. `run_head(folder)` runs the working tree's suite into `folder`.

    Returns the base commit's SHA, or None when that commit has no such suite file (nothing
    to compare with; nothing is run).
    """
    root = repo_root(suite.resolve().parent)
    sha = resolve_commit(root, rev)
    relative = suite.resolve().relative_to(root)
    with worktree(root, sha) as base_tree:
        if not (base_tree / relative).is_file():
            return None
        for i, (base_folder, head_folder) in enumerate(rounds, start=1):
            print(f"round {i} of {len(rounds)}: base {sha[:12]}", flush=True)
            _run_base(base_tree, relative, base_folder)
            print(f"round {i} of {len(rounds)}: head (working tree)", flush=True)
            run_head(head_folder)
    return sha


def _run_base(tree: Path, suite: Path, folder: Path) -> None:
    """`gam-bench run` of the base checkout's own suite file, importing the base's own code."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))}
    command = [
        sys.executable,
        "-m",
        "gam_bench",
        "run",
        str(suite),
        "--out",
        str(folder.resolve()),
        "--fresh",
        "--no-report",
    ]
    proc = subprocess.run(command, cwd=tree, env=env)
    if proc.returncode != 0:
        raise UserError(f"--against: the base revision's `gam-bench run {suite}` failed (exit {proc.returncode})")


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise UserError("--against: needs git, which is not installed") from None


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["no message"])[0]
