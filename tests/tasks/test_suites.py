"""The perplexity suites validate, and their CPU profiles describe runs this task can do."""

from __future__ import annotations

from pathlib import Path

import pytest

from gam_bench.cell import expand
from gam_bench.suite import load_suite
from gam_bench.tasks.perplexity.settings import PerplexitySettings

REPO = Path(__file__).resolve().parents[2]
SUITES = {
    "perplexity.yaml": ["gam", "transformer", "mamba-paper", "gam", "transformer"],
    "ablation.yaml": ["gam", "gam-global-only", "gam-sum-fusion", "gam-local-only"],
}


@pytest.mark.parametrize("file", sorted(SUITES))
def test_suite_validates_and_expands_on_both_devices(file: str) -> None:
    suite = load_suite(REPO / "suites" / file)
    for device in ("cpu", "cuda"):
        cells = expand(suite, device)
        assert [c.model for c in cells] == SUITES[file]
        assert all(c.task == "perplexity" for c in cells)
        for cell in cells:
            assert isinstance(cell.settings, PerplexitySettings)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_table1_suite_holds_both_data_sets(device: str) -> None:
    cells = expand(load_suite(REPO / "suites" / "perplexity.yaml"), device)
    runs = [(c.model, c.settings.dataset) for c in cells]
    wikitext = "wikitext-2" if device == "cpu" else "wikitext-2-raw"
    assert runs == [
        ("gam", wikitext),
        ("transformer", wikitext),
        ("mamba-paper", wikitext),
        ("gam", "tinystories"),
        ("transformer", "tinystories"),
    ]
    rows = {(c.settings.max_train_rows, c.settings.max_val_rows) for c in cells[3:]}
    assert rows == ({(None, None)} if device == "cpu" else {(50000, 5000)})  # the paper's trims, GPU only


@pytest.mark.parametrize("file", sorted(SUITES))
def test_gpu_profile_is_the_paper_protocol(file: str) -> None:
    cell = expand(load_suite(REPO / "suites" / file), "cuda")[0]
    s = cell.settings
    assert (cell.seq_len, cell.batch_size, cell.overrides, cell.dtype) == (256, 32, {}, "bfloat16")
    assert (s.effective_vocab_size, s.lr, s.warmup_steps, s.budget.epochs, s.max_eval_tokens) == (
        10000,
        3e-4,
        100,
        5,
        None,
    )


@pytest.mark.parametrize("file", sorted(SUITES))
def test_cpu_profile_is_small_and_uses_local_data(file: str) -> None:
    cells = expand(load_suite(REPO / "suites" / file), "cpu")
    for cell in cells:
        s = cell.settings
        assert s.dataset in ("wikitext-2", "tinystories")  # both splits are in the shared data folder
        assert cell.overrides["d_model"] <= 128 and s.max_eval_tokens
        if s.budget.tokens:  # whole steps: no tiny last step with its own evaluation row
            assert s.budget.tokens % (cell.batch_size * cell.seq_len) == 0
