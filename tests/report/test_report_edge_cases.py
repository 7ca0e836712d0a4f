"""Reports of unusual result sets still render: nothing ok, one length, perplexity only."""

from __future__ import annotations

import pandas as pd

from gam_bench import store
from gam_bench.report import write_report

BASE = {
    "suite": "edge",
    "task": "throughput",
    "level": "block",
    "mode": "forward",
    "dtype": "float32",
    "device": "cpu",
    "batch_size": 1,
    "started_at": pd.Timestamp("2025-01-01", tz="UTC"),
}


def _write(rows: list[dict], folder) -> str:
    store.append(rows, folder / "results")
    return write_report(folder / "results", folder / "out").read_text()


def test_every_cell_failed(tmp_path):
    rows = [
        {
            **BASE,
            "cell_id": f"c{n}",
            "run_id": f"r{n}",
            "model": "transformer-naive",
            "seq_len": n,
            "status": "oom" if n == 256 else "skipped",
            "error": "MemoryError",
        }
        for n in (256, 512)
    ]
    text = _write(rows, tmp_path)
    assert text.count("| transformer-naive | OOM | skipped |") == 2  # time and memory tables
    assert len(list((tmp_path / "out" / "figures").glob("*.png"))) == 3
    assert len(list((tmp_path / "out" / "figures").glob("*.svg"))) == 3


def test_single_length_has_no_fit(tmp_path):
    rows = [
        {
            **BASE,
            "cell_id": "c",
            "run_id": "r",
            "model": "gam",
            "seq_len": 256,
            "status": "ok",
            "time_ms": 1.0,
            "time_samples_ms": [1.0, 1.1],
            "tokens_per_s": 256e3,
            "peak_mem_bytes": 2**20,
        }
    ]
    text = _write(rows, tmp_path)
    assert "| gam | – | – | – | – | – |" in text  # exponents: nothing to fit
    assert "Fewer than two models share a length." in text


def test_perplexity_only(tmp_path):
    rows = [
        {
            **BASE,
            "task": "perplexity",
            "cell_id": "p",
            "run_id": "r",
            "model": "gam",
            "seq_len": 128,
            "status": "ok",
            "dataset": "tinystories",
            "step": s,
            "tokens_seen": 100 * s,
            "wall_s": float(s),
            "val_loss": 5.0 - s / 100,
            "val_ppl": 2.718 ** (5.0 - s / 100),
        }
        for s in (10, 20)
    ]
    text = _write(rows, tmp_path)
    assert "## Throughput" not in text and "## Perplexity: tinystories" in text
    assert "position.png" not in text  # no per-position losses stored
