"""Atomic file writes: the whole new file or the old state, never a torn or half-visible one.

    atomic_write(path, lambda tmp: table_writer(tmp))

The content is written to a hidden temporary name next to `path` (`.<name>.<pid>.<random>.tmp`,
which no loader globs for), flushed to disk, moved into place with `os.replace`, and the folder
is synced so the rename survives a power cut. On any error the temporary file is removed and
`path` is untouched. Used by the results store and the tokenizer cache. No torch here.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def temporary_name(path: Path) -> Path:
    """The hidden name a write to `path` goes through."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Call write(tmp) on a temporary file next to `path`, fsync it, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        write(tmp)
        _fsync(tmp, os.O_RDWR)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync(path.parent, os.O_RDONLY)
    return path


def _fsync(path: Path, flags: int) -> None:
    """Flush a file's (or a folder's entries') data to disk; a folder that cannot be opened is skipped."""
    try:
        fd = os.open(path, flags)
    except OSError:
        if path.is_dir():
            return
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
