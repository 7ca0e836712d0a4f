"""Callgrind's client requests from Python: mark the region a process wants counted.

Callgrind (valgrind's call-graph tool) counts the instructions a program executes. Started
with `--instr-atstart=no --collect-atstart=no`, it counts nothing until the program asks;
the asking is done with the client-request macros of `valgrind/callgrind.h`, which are
inline assembly (a magic no-op sequence valgrind recognises), so Python cannot issue them
directly. This module compiles a six-function C shim around them the first time it is
needed, into the cache folder ($GAM_BENCH_CACHE, else ~/.cache/gam-bench; never the
checkout), keyed by the hash of its source, and loads it with ctypes:

    shim = Callgrind.load()         # CountingUnavailable(reason) if no compiler or no callgrind.h
    shim.running()                  # True only under valgrind
    shim.start(); shim.zero(); shim.toggle(); step(); shim.toggle(); shim.dump("step-0")

Each `dump` writes one profile file (`<out>.<n>`, numbered from 1 by valgrind) whose
`totals:` (or `summary:`) line holds the instructions since the last `zero`:
`read_totals(path)` reads it. No torch here.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

SOURCE = """\
#include <valgrind/callgrind.h>
int gb_running(void) { return RUNNING_ON_VALGRIND; }
void gb_start(void) { CALLGRIND_START_INSTRUMENTATION; }
void gb_stop(void) { CALLGRIND_STOP_INSTRUMENTATION; }
void gb_zero(void) { CALLGRIND_ZERO_STATS; }
void gb_toggle(void) { CALLGRIND_TOGGLE_COLLECT; }
void gb_dump(const char *name) { CALLGRIND_DUMP_STATS_AT(name); }
"""
COMPILERS = ("cc", "gcc", "clang")
CACHE_ENV = "GAM_BENCH_CACHE"  # the same cache root as measure/calibrate.py


class CountingUnavailable(RuntimeError):
    """Instructions cannot be counted here; the message is the reason recorded in the row."""


def cache_root() -> Path:
    """$GAM_BENCH_CACHE, else ~/.cache/gam-bench (as the calibration cache)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "gam-bench").expanduser()


def shim_path() -> Path:
    digest = hashlib.sha256(SOURCE.encode()).hexdigest()[:16]
    return cache_root() / "callgrind-shim" / digest / "libgbcallgrind.so"


def compiler() -> str | None:
    """$CC, else the first of cc / gcc / clang on PATH; None when there is none."""
    given = os.environ.get("CC")
    if given:
        return shutil.which(given)
    return next((path for path in map(shutil.which, COMPILERS) if path), None)


def build_shim(path: Path | None = None) -> Path:
    """The compiled shim (built now if absent, atomically); CountingUnavailable with the reason."""
    path = path or shim_path()
    if path.exists():
        return path
    cc = compiler()
    if cc is None:
        raise CountingUnavailable("no C compiler (cc, gcc or clang; or $CC) to build the callgrind shim")
    path.parent.mkdir(parents=True, exist_ok=True)
    source = path.with_suffix(".c")
    source.write_text(SOURCE)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    result = subprocess.run(
        [cc, "-O2", "-shared", "-fPIC", "-o", str(partial), str(source)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        why = (result.stderr.strip().splitlines() or ["no message"])[0]
        raise CountingUnavailable(f"cannot build the callgrind shim with {cc} (valgrind/callgrind.h missing?): {why}")
    os.replace(partial, path)
    return path


class Callgrind:
    """The loaded shim; every call is a no-op when not running under valgrind."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self._lib = library
        self._lib.gb_dump.argtypes = [ctypes.c_char_p]

    @classmethod
    def load(cls, path: Path | None = None) -> Callgrind:
        return cls(ctypes.CDLL(str(build_shim(path))))

    def running(self) -> bool:
        return bool(self._lib.gb_running())

    def start(self) -> None:
        self._lib.gb_start()

    def stop(self) -> None:
        self._lib.gb_stop()

    def zero(self) -> None:
        self._lib.gb_zero()

    def toggle(self) -> None:
        self._lib.gb_toggle()

    def dump(self, name: str) -> None:
        self._lib.gb_dump(name.encode())


def read_totals(path: Path) -> dict[str, int]:
    """Event name -> count from a callgrind profile's `events:` and `totals:` / `summary:` lines."""
    events: list[str] = []
    totals: list[int] | None = None
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("events:"):
            events = line.split(":", 1)[1].split()
        elif line.startswith(("totals:", "summary:")) and totals is None:
            totals = [int(value) for value in line.split(":", 1)[1].split()]
    if not events or totals is None:
        raise ValueError(f"{path}: not a callgrind profile (no events: / totals: line)")
    return dict(zip(events, totals))
