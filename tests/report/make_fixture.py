"""Write the small results fixture used by the report tests (deterministic).

    python tests/report/make_fixture.py     # rewrites results/fixtures/report_small/

Two throughput groups (block forward with gam, transformer-naive, transformer and mamba
over 256..4096; block forward_backward with gam and transformer), failed cells (oom,
skipped after the oom, timeout), one superseded attempt (error, then ok), and perplexity
cells on wikitext-2-raw (gam and transformer with three evaluations each, mamba oom).
Timings follow simple cost models with fixed-seed noise; they are not measurements.
After regenerating, refresh the golden report: GAM_BENCH_UPDATE_GOLDEN=1 pytest tests/report.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from gam_bench import store

FOLDER = Path(__file__).resolve().parents[2] / "results" / "fixtures" / "report_small"
SUITE = "report-small"
T0 = pd.Timestamp("2025-01-01T00:00:00Z")
ENV = {
    "suite": SUITE,
    "device": "cpu",
    "device_name": "cpu",
    "cpu_model": "Fixture CPU @ 2.0GHz",
    "torch_version": "2.13.0+cpu",
    "cuda_version": None,
    "threads": 2,
    "hostname": "fixture",
    "gam_bench_version": "0.1.0",
    "git_sha": "0000000",
    "executor": "local",
}
FAMILY = {"gam": "gam", "transformer-naive": "transformer", "transformer": "transformer", "mamba": "mamba"}
BACKEND = {"gam": "reference", "transformer-naive": "naive", "transformer": "sdpa", "mamba": "torch-chunked-scan"}

# ms per call and bytes at length L (block, batch 1): simple cost models
TIME = {
    "gam": lambda L: 0.002 * L + 0.3,
    "transformer-naive": lambda L: 2e-6 * L**2 + 0.2,
    "transformer": lambda L: 4e-7 * L**2 + 0.001 * L + 0.2,
    "mamba": lambda L: 0.01 * L + 0.5,
}
MEMORY = {
    "gam": lambda L: 4000 * L,
    "transformer-naive": lambda L: 16 * L**2,
    "transformer": lambda L: 6000 * L,
    "mamba": lambda L: 9000 * L,
}
FAILED = {  # (mode, model, seq_len) -> (status, error)
    ("forward", "transformer-naive", 2048): ("oom", "MemoryError: cannot allocate 256.0 MiB (cap 200 MiB)"),
    ("forward", "transformer-naive", 4096): ("skipped", "skipped: transformer-naive was oom at 2048"),
    ("forward", "mamba", 4096): ("timeout", "timeout after 60 s | cell limit"),
}


def cell_id(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def _identity(config: dict, run: int) -> dict:
    return {
        **ENV,
        "cell_id": cell_id(config),
        "run_id": f"run-{run:03d}",
        "task": config["task"],
        "model": config["model"],
        "family": FAMILY[config["model"]],
        "level": config["level"],
        "mode": config["mode"],
        "dtype": "float32",
        "batch_size": config["batch_size"],
        "seq_len": config["seq_len"],
        "seed": config["seed"],
        "config_json": json.dumps(config, sort_keys=True),
        "started_at": T0 + pd.Timedelta(minutes=run),
    }


def throughput_row(mode: str, model: str, seq_len: int, run: int, rng: np.random.Generator) -> dict:
    config = {
        "task": "throughput",
        "model": model,
        "level": "block",
        "mode": mode,
        "dtype": "float32",
        "batch_size": 1,
        "seq_len": seq_len,
        "seed": 0,
        "overrides": {"d_model": 64},
    }
    row = {**_identity(config, run), "d_model": 64, "n_layers": 1, "params": 50_000}
    status, error = FAILED.get((mode, model, seq_len), ("ok", None))
    if status != "ok":
        return {**row, "status": status, "error": error}
    factor = 3.0 if mode == "forward_backward" else 1.0
    samples = factor * TIME[model](seq_len) * np.exp(rng.normal(0.0, 0.03, 7))  # 7 repeats, ms
    q25, med, q75 = np.percentile(samples, [25, 50, 75])
    return {
        **row,
        "status": "ok",
        "backend": BACKEND[model],
        "time_ms": float(med),
        "time_ms_q25": float(q25),
        "time_ms_q75": float(q75),
        "time_samples_ms": [round(float(s), 6) for s in samples],
        "tokens_per_s": seq_len / (med / 1000),
        "peak_mem_bytes": int(factor * MEMORY[model](seq_len)),
        "mem_source": "rss_hwm",
        "duration_s": 1.0,
    }


def throughput_rows(rng: np.random.Generator) -> list[dict]:
    rows, run = [], 10
    for mode, models, lengths in [
        ("forward", ["gam", "mamba", "transformer", "transformer-naive"], [256, 512, 1024, 2048, 4096]),
        ("forward_backward", ["gam", "transformer"], [256, 512, 1024]),
    ]:
        for model in models:
            for seq_len in lengths:
                rows.append(throughput_row(mode, model, seq_len, run, rng))
                run += 1
    return rows


def superseded_row() -> dict:
    """An older failed attempt at gam forward 1024, re-run ok later (the report ignores it)."""
    config = {
        "task": "throughput",
        "model": "gam",
        "level": "block",
        "mode": "forward",
        "dtype": "float32",
        "batch_size": 1,
        "seq_len": 1024,
        "seed": 0,
        "overrides": {"d_model": 64},
    }
    return {**_identity(config, 0), "status": "error", "error": "RuntimeError: worker died"}


def perplexity_rows() -> list[dict]:
    rows = []
    for run, (model, params, final_loss) in enumerate(
        [("gam", 1_234_567, 5.10), ("transformer", 1_301_234, 5.25), ("mamba", 1_280_000, None)], start=200
    ):
        config = {
            "task": "perplexity",
            "model": model,
            "level": "lm",
            "mode": "train_step",
            "dtype": "float32",
            "batch_size": 8,
            "seq_len": 128,
            "seed": 0,
            "perplexity": {"dataset": "wikitext-2-raw", "budget": {"tokens": 153_600}},
        }
        base = {
            **_identity(config, run),
            "dataset": "wikitext-2-raw",
            "tokenizer": "bpe-10000",
            "split": "validation",
            "data_source": "local:wikitext-2-raw",
            "data_sha256": hashlib.sha256(b"fixture").hexdigest(),
            "params": params,
            "d_model": 128,
            "n_layers": 2,
        }
        if final_loss is None:  # failed before loading data: the dataset is only in config_json
            data_columns = ("dataset", "tokenizer", "split", "data_source", "data_sha256")
            failed = {k: v for k, v in base.items() if k not in data_columns}
            rows.append({**failed, "status": "oom", "error": "MemoryError: cannot allocate 1.0 GiB"})
            continue
        rows += [_eval_row(base, step, final_loss, model) for step in (50, 100, 150)]
    return rows


def _eval_row(base: dict, step: int, final_loss: float, model: str) -> dict:
    loss = final_loss + 2.0 * (150 - step) / 100  # falls towards final_loss
    secs_per_step = 0.20 if model == "gam" else 0.26
    tokens, epoch = step * 8 * 128, step / 100
    edges = [0, 32, 64, 96, 128]
    return {
        **base,
        "status": "ok",
        "backend": BACKEND[model],
        "step": step,
        "epoch": epoch,
        "tokens_seen": tokens,
        "wall_s": step * secs_per_step,
        "epoch_time_s": step * secs_per_step / epoch,
        "train_loss": loss + 0.05,
        "val_loss": loss,
        "val_ppl": math.exp(loss),
        "position_loss": [loss + 0.6, loss + 0.1, loss - 0.2, loss - 0.4],
        "position_bucket_edges": edges,
    }


def rows() -> list[list[dict]]:
    """The fixture's part files, each a list of rows, in write order."""
    rng = np.random.default_rng(0)
    return [[superseded_row()], throughput_rows(rng) + perplexity_rows()]


def main() -> None:
    FOLDER.mkdir(parents=True, exist_ok=True)
    for old in FOLDER.glob("*.parquet"):
        old.unlink()
    for part in rows():
        store.append(part, FOLDER)
    print(f"wrote {sum(len(p) for p in rows())} rows to {FOLDER}")


if __name__ == "__main__":
    main()
