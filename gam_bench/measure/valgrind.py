"""Starting a worker process under valgrind's callgrind, for cells with `measure.instructions`.

The parent (runner) asks `find()` for a usable valgrind: its path and version, or the reason
there is none (not on PATH, too old, does not run), which every counted row then records
(`instructions_reason`) and the run prints, so a gate never turns time-only in silence.
`write_launcher(folder, found)` writes a small executable shell script that starts the
Python interpreter under callgrind with counting off (`--instr-atstart=no
--collect-atstart=no`: nothing is instrumented or counted until the worker asks around
its steps, measure/instructions.py) and with the settings that keep counts repeatable:

- `OMP_NUM_THREADS=1` / `MKL_NUM_THREADS=1` (one thread: valgrind serialises threads, and
  another thread's work would land in the count at a varying share);
- `PYTHONHASHSEED=0` (the order of sets and dicts of strings);
- on x86-64, kernels valgrind runs at its usual speed (`kernel_env`): valgrind 3.19 cannot
  run AVX-512 code (SIGILL) and emulates every FMA lane in a helper function that saves and
  restores the rounding state (most of a counting worker's time: docs/results/gate.md), so
  Mamba's fused CPU scan is built with `-march=x86-64-v3 -mno-fma`
  (`GAM_BENCH_CPU_SCAN_TARGET`, models/cpu_scan.py; the row records that build in
  `instructions_build`), MKL runs its SSE4.2 kernels (`MKL_ENABLE_INSTRUCTIONS`) and oneDNN
  its AVX ones (`ONEDNN_MAX_CPU_ISA`). The counts are of those kernels, the same on every
  run and every x86-64 runner; the timed passes run the native ones;
- `GAM_BENCH_COUNTING=<folder>`: tells the worker it is a counting worker and where
  callgrind writes its profiles (`callgrind.out.<pid>.<n>`, one per counted step).

The executor starts its workers through that script instead of the interpreter
(runner/executor.py `LocalExecutor.launcher`). No torch here.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

COUNTING_ENV = "GAM_BENCH_COUNTING"  # set in a counting worker: the folder callgrind writes to
VERSION_ENV = "GAM_BENCH_VALGRIND_VERSION"  # set in a counting worker: the version it runs under
MIN_VERSION = (3, 15)  # the oldest accepted; the counts were validated with 3.19 (Debian 12)
REPEATABLE_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
SCAN_TARGET_ENV = "GAM_BENCH_CPU_SCAN_TARGET"  # models/cpu_scan.TARGET_ENV (this module imports no torch)
COUNTING_TARGET = "-march=x86-64-v3 -mno-fma"  # AVX2 without FMA: what valgrind 3.19 runs fast
COUNTING_LIBRARIES = {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "AVX"}  # no FMA kernels
CALLGRIND_OPTIONS = (
    "--tool=callgrind",
    "--instr-atstart=no",  # no instrumentation (and no slow-down from it) before the worker asks
    "--collect-atstart=no",  # counting only between the worker's toggles
    "--dump-instr=no",
    "--compress-strings=no",
)


@dataclass(frozen=True)
class Valgrind:
    path: str | None
    version: tuple[int, ...] | None
    reason: str | None = None  # why it cannot count (None: it can)

    @property
    def usable(self) -> bool:
        return self.reason is None

    @property
    def label(self) -> str:
        return "callgrind " + ".".join(map(str, self.version or ()))


def parse_version(text: str) -> tuple[int, ...] | None:
    """`valgrind-3.19.0` -> (3, 19, 0); None when unreadable."""
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(part) for part in match.groups() if part is not None) if match else None


def find(path: str | None = None) -> Valgrind:
    """The valgrind on PATH (or at `path`), with the reason it cannot count if so."""
    found = path or shutil.which("valgrind")
    if found is None:
        return Valgrind(None, None, "valgrind is not installed (not on PATH); install the distribution's valgrind")
    try:
        result = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Valgrind(found, None, f"{found} --version failed: {exc}")
    version = parse_version(result.stdout)
    if result.returncode != 0 or version is None:
        return Valgrind(found, None, f"{found} --version gave no version ({result.stdout.strip() or 'no output'})")
    if version < MIN_VERSION:
        wanted = ".".join(map(str, MIN_VERSION))
        return Valgrind(found, version, f"valgrind {'.'.join(map(str, version))} is too old (need {wanted} or newer)")
    return Valgrind(found, version)


def kernel_env(machine: str | None = None) -> dict[str, str]:
    """x86-64: the environment that keeps AVX-512 and FMA out of a counting worker's kernels."""
    machine = (machine or platform.machine()).lower()
    return {SCAN_TARGET_ENV: COUNTING_TARGET, **COUNTING_LIBRARIES} if machine in ("x86_64", "amd64") else {}


def launcher_script(found: Valgrind, folder: Path, python: str | None = None) -> str:
    """The text of the launcher: repeatable environment, then exec python under callgrind."""
    version = ".".join(map(str, found.version or ()))
    env = {**REPEATABLE_ENV, **kernel_env(), COUNTING_ENV: str(folder), VERSION_ENV: version}
    options = [
        *CALLGRIND_OPTIONS,
        f"--callgrind-out-file={folder}/callgrind.out.%p",
        f"--log-file={folder}/valgrind.%p.log",
    ]
    exports = " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())
    command = " ".join(shlex.quote(part) for part in (str(found.path), *options, python or sys.executable))
    return f'#!/bin/sh\nexport {exports}\nexec {command} "$@"\n'


def write_launcher(folder: Path, found: Valgrind, python: str | None = None) -> Path:
    """An executable `python-under-callgrind` script in `folder` (created); see the module docstring."""
    if not found.usable:
        raise ValueError(f"valgrind cannot count: {found.reason}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "python-under-callgrind"
    path.write_text(launcher_script(found, folder, python))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def counting_folder() -> Path | None:
    """In a worker: the folder callgrind writes to when this is a counting worker, else None."""
    value = os.environ.get(COUNTING_ENV)
    return Path(value) if value else None


def counting_tool() -> str:
    """In a counting worker: "callgrind <version>" of the valgrind it runs under."""
    version = os.environ.get(VERSION_ENV)
    return f"callgrind {version}" if version else "callgrind"
