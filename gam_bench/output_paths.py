"""Output paths given on the command line, checked before anything is written or run: a
folder option naming an existing file (or a path through one) is one line, exit 2, instead of
a traceback after the work is done. No torch here."""

from __future__ import annotations

import os
from pathlib import Path

from gam_bench.errors import UserError


def check_folder(path: str | os.PathLike[str] | None, flag: str) -> None:
    """`path` can be (or become) a folder: not an existing file, and not below one."""
    if path is None:
        return
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag}: {path} is a file, not a folder; give a folder name (it is created if missing)")
    _check_parents(path, flag)


def check_file(path: str | os.PathLike[str] | None, flag: str) -> None:
    """`path` can be written as a file: not an existing folder, and its folder not a file."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag}: {path} is a folder, not a file; give a file name")
    _check_parents(path, flag)


def _check_parents(path: Path, flag: str) -> None:
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{flag}: {path}: {parent} is a file, not a folder")
            return
