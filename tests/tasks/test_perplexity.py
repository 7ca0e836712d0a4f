"""The perplexity task end to end on real text: learning, rows, budgets, store round trip."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from gam_bench import store
from gam_bench.cell import Cell
from gam_bench.errors import UserError
from gam_bench.settings import Limits, Measure
from gam_bench.tasks.perplexity import measure as perplexity
from gam_bench.tasks.perplexity.evaluate import unigram_perplexity
from gam_bench.tasks.perplexity.settings import PerplexitySettings

# TinyStories excerpts: the smallest real text with both splits (BPE trains in about a second).
SETTINGS = {
    "dataset": "tinystories",
    "vocab_size": 512,
    "warmup_steps": 5,
    "lr": 3e-2,  # a tiny model on a few dozen steps
    "dropout": 0.0,
    "max_eval_tokens": 4000,
    "position_buckets": 4,
}


def _cell(model: str, data_dir: Path, **settings: Any) -> Cell:
    return Cell(
        task="perplexity",
        model=model,
        overrides={"d_model": 32},
        level="lm",
        mode="train_step",
        dtype="float32",
        device="cpu",
        batch_size=8,
        seq_len=32,
        seed=0,
        threads=None,
        measure=Measure(),
        limits=Limits(),
        plugins=[],
        settings=PerplexitySettings.model_validate({**SETTINGS, "data_dir": str(data_dir), **settings}),
    )


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def cache(module_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One tokenizer cache for this module: the TinyStories BPE is trained once."""
    monkeypatch.setenv("GAM_BENCH_CACHE", str(module_cache))
    return module_cache


class Progress:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def progress(self, message: str) -> None:
        self.messages.append(message)


def test_tiny_model_learns_within_a_few_dozen_steps(tiny_model: str, data_dir: Path) -> None:
    ctx = Progress()
    cell = _cell(tiny_model, data_dir, budget={"tokens": 40 * 8 * 32}, eval_interval=10)
    rows = perplexity.run(cell, ctx)
    assert [r["step"] for r in rows] == [10, 20, 30, 40]
    losses = [r["val_loss"] for r in rows]
    assert losses[-1] < losses[0] - 0.2  # improving
    corpus = perplexity.load_corpus(cell.settings)
    unigram = unigram_perplexity(corpus.train_ids.numpy(), corpus.val_ids.numpy(), corpus.tokenizer.vocab_size)
    assert rows[-1]["val_ppl"] < unigram < corpus.tokenizer.vocab_size  # beyond token frequencies
    assert rows[-1]["val_ppl"] == pytest.approx(math.exp(losses[-1]))
    assert rows[-1]["tokens_seen"] == 40 * 8 * 32
    assert len(ctx.messages) == 1 + len(rows)


def test_rows_carry_provenance_and_round_trip_through_the_store(
    tiny_model: str, data_dir: Path, tmp_path: Path
) -> None:
    rows = perplexity.run(_cell(tiny_model, data_dir, budget={"tokens": 8 * 8 * 32}))
    assert len(rows) == 1  # no interval: only the end of the budget (well under one epoch)
    row = rows[0]
    assert row["dataset"] == "tinystories" and row["split"] == "validation[:4000 tokens]"
    assert "TinyStories-train-head.txt" in row["data_source"] and "validation-head" in row["data_source"]
    assert row["data_sha256"].startswith("train=") and len(row["data_sha256"].split("; ")) == 2
    assert row["tokenizer"].startswith("bpe-") and row["backend"] == "test" and row["d_model"] == 32
    assert row["position_bucket_edges"] == [0, 8, 16, 24, 32] and len(row["position_loss"]) == 4
    assert 0 < row["epoch"] < 1 and row["epoch_time_s"] == pytest.approx(row["wall_s"] / row["epoch"])

    identity = {
        "suite": "t",
        "cell_id": "c1",
        "run_id": "r1",
        "task": "perplexity",
        "model": tiny_model,
        "status": "ok",
    }
    store.append([{**identity, **r} for r in rows], tmp_path)
    df = store.load(tmp_path)
    assert len(df) == 1
    for key, value in row.items():
        stored = df.iloc[0][key]
        if isinstance(value, list):
            assert list(stored) == pytest.approx(value)
        elif isinstance(value, float):
            assert stored == pytest.approx(value)
        else:
            assert stored == value and not pd.isna(stored)


def test_epoch_budget_evaluates_after_every_epoch(tiny_model: str, data_dir: Path, tmp_path: Path) -> None:
    # A 3-line train file makes an epoch a handful of steps.
    folder = tmp_path / "tinystories"
    folder.mkdir()
    lines = (data_dir / "tinystories" / "TinyStories-train-head.txt").read_text().splitlines()[:40]
    (folder / "TinyStories-train.txt").write_text("\n".join(lines) + "\n")
    (folder / "TinyStories-valid.txt").write_text("\n".join(lines[:10]) + "\n")
    rows = perplexity.run(_cell(tiny_model, tmp_path, budget={"epochs": 2}, vocab_size=200))
    assert [r["epoch"] for r in rows] == [1.0, 2.0]
    assert rows[1]["tokens_seen"] == 2 * rows[0]["tokens_seen"]


def test_float16_and_conflicting_vocab_are_user_errors(tiny_model: str, data_dir: Path) -> None:
    cell = _cell(tiny_model, data_dir, budget={"tokens": 256})
    with pytest.raises(UserError, match="float32 or bfloat16"):
        perplexity.run(cell.model_copy(update={"dtype": "float16"}))
    with pytest.raises(UserError, match="vocab_size=123 conflicts"):
        perplexity.run(cell.model_copy(update={"overrides": {"vocab_size": 123}}))


def test_missing_data_fails_before_training(tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GAM_BENCH_DATA_DIR", raising=False)
    cell = _cell(tiny_model, tmp_path / "nowhere", budget={"tokens": 256})
    with pytest.raises(UserError, match="nowhere.*does not exist"):
        perplexity.run(cell)


@pytest.mark.parametrize("model", ["gam", "transformer", "mamba-paper"])
def test_registry_models_run_a_short_budget(model: str, data_dir: Path) -> None:
    cell = _cell(model, data_dir, budget={"tokens": 3 * 8 * 32}, max_eval_tokens=600)
    cell = cell.model_copy(update={"overrides": {"d_model": 32, "n_layers": 1}})
    (row,) = perplexity.run(cell)
    assert row["step"] == 3 and row["backend"] and row["n_layers"] == 1
    assert math.isfinite(row["val_loss"]) and row["params"] > 0
