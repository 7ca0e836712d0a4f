"""What is recorded about the machine with every row (the environment columns of the store)."""

from __future__ import annotations

import datetime
import functools
import os
import platform
import socket
import subprocess
from pathlib import Path

import torch

import gam_bench
from gam_bench.errors import UserError


@functools.cache
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str | None:
    """The output of `git ARGS` in the gam-bench checkout, or None outside one (or on any failure)."""
    root = Path(gam_bench.__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


@functools.cache
def _head() -> tuple[str | None, datetime.datetime | None]:
    """(commit, committer time in UTC) of the checkout's HEAD, from one git call; Nones outside one."""
    sha, _, stamp = (_git("log", "-1", "--format=%H %ct") or "").partition(" ")
    when = datetime.datetime.fromtimestamp(int(stamp), datetime.timezone.utc) if stamp.isdigit() else None
    return sha or None, when


def git_sha() -> str | None:
    """The commit of the gam-bench checkout, or None outside a git checkout."""
    return _head()[0]


def git_commit_time() -> datetime.datetime | None:
    """The committer time of `git_sha()` (UTC), or None outside a git checkout."""
    return _head()[1]


@functools.cache
def git_dirty() -> bool | None:
    """Whether tracked files of the checkout differ from `git_sha()` (None outside a git checkout):
    a row measured on a modified tree is not that commit's."""
    status = _git("--no-optional-locks", "status", "--porcelain", "--untracked-files=no")  # no index.lock
    return None if status is None else bool(status)


def usable_cores() -> int:
    """CPU cores this process may run on (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def resolve_device(requested: str) -> str:
    """'auto' -> the available accelerator type (cuda, xpu, mps, ...) or 'cpu'.

    An explicitly requested device that this machine does not have is a UserError.
    """
    accelerator = torch.accelerator.current_accelerator()  # check_available= is newer than torch 2.6
    if accelerator is not None and not torch.accelerator.is_available():
        accelerator = None
    if requested == "auto":
        return accelerator.type if accelerator is not None else "cpu"
    if requested != "cpu" and (accelerator is None or accelerator.type != requested.split(":")[0]):
        have = accelerator.type if accelerator is not None else "none"
        raise UserError(f"{requested!r} is not available here (accelerator: {have}; torch {torch.__version__})")
    return requested


def device_name(device: str) -> str:
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(dev)
    if dev.type == "cpu":
        return cpu_model()
    return dev.type


def _load_average() -> float | None:
    """1-minute load average: how busy the machine was (others' work skews timings)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def environment(device: str) -> dict[str, object]:
    """The environment columns for rows measured on `device` in this process."""
    return {
        "device_name": device_name(device),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "cpu_model": cpu_model(),
        "threads": torch.get_num_threads(),
        "load_avg_1m": _load_average(),
        "hostname": socket.gethostname(),
        "gam_bench_version": gam_bench.__version__,
        "git_sha": git_sha(),
        "git_commit_time": git_commit_time(),
        "git_dirty": git_dirty(),
    }
