"""Fake results of several commits, written through the store's own writer (`store.append`).

Each commit gets its own results folder holding one attempt per cell, with the commit's
`git_sha`, `git_commit_time` and `git_dirty`. Values follow simple models with fixed-seed noise
(a commit-level level shift, as a shared machine's drift, and per-sample noise); they are not
measurements. `steps` multiplies a model's metric from a given commit on.

Shared by tests/history and tests/browser (loaded by path: the test folders are no packages).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from gam_bench import store

MODELS = {"gam": 3.0, "transformer": 5.0, "mamba": 4.0}  # base ms per step
OPS = {"gam": 31, "transformer": 33, "mamba": 42}
T0 = pd.Timestamp("2026-01-01T00:00:00Z")


def sha_of(i: int) -> str:
    return hashlib.sha1(f"commit {i}".encode()).hexdigest()


def config(model: str, seq_len: int = 128) -> dict:
    return {
        "task": "throughput", "model": model, "level": "block", "mode": "forward", "dtype": "float32",
        "batch_size": 2, "seq_len": seq_len, "device": "cpu", "threads": 1, "overrides": {"d_model": 64},
        "measure": {"repeats": 5, "processes": 1}, "limits": {"timeout_s": 60}, "perplexity": None,
    }  # fmt: skip


def write_commit(root: Path, i: int, factors: dict[tuple[str, str], float], rng: np.random.Generator,
                 *, noise: float = 0.02, dirty: bool = False, models=tuple(MODELS), with_revision: bool = True,
                 commit_time: bool = True, folder: Path | None = None, tensor_bytes: bool = True,
                 task: str = "throughput") -> Path:  # fmt: skip
    """One commit's results folder (default root/commit-<i>); factors[(model, metric)] scales a value."""
    folder = folder or root / f"commit-{i:02d}{'-dirty' if dirty else ''}"
    rows = []
    level = float(np.exp(rng.normal(0, noise)))  # the machine's level during this commit's run
    for model in models:
        cfg = config(model)
        time_f = factors.get((model, "time"), 1.0)
        samples = MODELS[model] * time_f * level * np.exp(rng.normal(0, noise / 2, 5))
        rows.append({
            "suite": "fake", "cell_id": hashlib.sha1(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16],
            "run_id": f"{i}-{model}-{'d' if dirty else 'c'}-{rng.integers(1 << 30)}", "task": task,
            "model": model, "family": model, "level": "block", "mode": "forward", "device": "cpu", "dtype": "float32",
            "batch_size": 2, "seq_len": 128, "threads": 1, "config_json": json.dumps(cfg, sort_keys=True),
            "status": "ok", "time_ms": float(np.median(samples)), "time_samples_ms": samples.tolist(),
            "dispatched_ops": int(round(OPS[model] * factors.get((model, "ops"), 1.0))),
            "peak_tensor_bytes": int(1_000_000 * factors.get((model, "memory"), 1.0)) if tensor_bytes else None,
            "peak_mem_bytes": int(3_000_000 * factors.get((model, "memory"), 1.0) * level),
            "git_sha": sha_of(i) if with_revision else None,
            "git_commit_time": T0 + pd.Timedelta(hours=i) if commit_time else None,
            "git_dirty": dirty,
            "load_avg_1m": 1.0,
            "started_at": pd.Timestamp("2026-02-01T00:00:00Z") + pd.Timedelta(minutes=(97 * i) % 50),
        })  # fmt: skip
    store.append(rows, folder)
    return folder


def write_history(root: Path, n: int, steps: dict[tuple[str, str], tuple[int, float]] | None = None,
                  seed: int = 0, **kwargs) -> list[Path]:  # fmt: skip
    """n commits; steps[(model, metric)] = (commit index, factor from that commit on)."""
    rng = np.random.default_rng(seed)
    steps = steps or {}
    folders = []
    for i in range(n):
        factors = {key: factor for key, (at, factor) in steps.items() if i >= at}
        folders.append(write_commit(root, i, factors, rng, **kwargs))
    return folders
