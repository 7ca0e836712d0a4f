"""The baseline folder layout of `gam-bench check`: recorded runs `run-1/`, `run-2/`, ...

`gam-bench check SUITE --baseline PATH --update` records several runs of the suite so that the
gate sees the baseline's own run-to-run spread: a candidate cell must fail against each of them.
A results path without `run-N/` folders is one recorded run. No torch here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from gam_bench import store
from gam_bench.errors import UserError

RUN_PREFIX = "run-"


def run_folder(parent: Path, index: int) -> Path:
    """parent/run-<index> (index counts from 1)."""
    return parent / f"{RUN_PREFIX}{index}"


def recorded_runs(path: str | os.PathLike[str]) -> list[Path]:
    """The recorded runs in a results folder: its `run-1/`, `run-2/`, ... folders, else the path."""
    path = Path(path)
    runs = [p for p in path.glob(f"{RUN_PREFIX}*") if p.is_dir() and store.part_files(p)] if path.is_dir() else []
    return sorted(runs, key=lambda p: (len(p.name), p.name)) or [path]


def record_baseline(runs: list[Path], baseline: Path) -> int:
    """Make `baseline` hold exactly `runs`, as baseline/run-1, run-2, ...; return the cells of run-1.

    Replaced: the result files directly in `baseline` and its old run-* folders; anything else
    there is kept. New runs are copied first (their part files and recorded suite settings) and
    swapped in after the old ones are removed.
    """
    if baseline.exists() and not baseline.is_dir():
        raise UserError(f"--baseline: {baseline} is a file; --update needs a folder")
    baseline.mkdir(parents=True, exist_ok=True)
    staged = []
    for i, run in enumerate(runs, start=1):
        stage = baseline / f".staging-{RUN_PREFIX}{i}"
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir()
        for file in [*store.part_files(run), *store.suite_meta_files(run)]:
            shutil.copyfile(file, stage / file.name)
        staged.append(stage)
    for part in store.part_files(baseline):
        if part.parent == baseline:
            part.unlink()
    for old in baseline.glob(f"{RUN_PREFIX}*"):
        if old.is_dir():
            shutil.rmtree(old)
    for stage in staged:
        os.replace(stage, baseline / stage.name.removeprefix(".staging-"))
    return len(store.latest(store.load(run_folder(baseline, 1))))
