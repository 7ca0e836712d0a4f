"""The sweep's terminal output: per-cell lines and the end-of-run summary table."""

from __future__ import annotations

from cells import make_cell
from rich.console import Console

from gam_bench.runner.progress import SweepProgress, cell_label, summary_table
from gam_bench.tasks.perplexity.settings import PerplexitySettings


def _render(table) -> str:
    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()


def _cell(**extra):
    return make_cell(
        model="gam", level="lm", mode="train_step", batch_size=8, seq_len=128, overrides={"d_model": 64}, **extra
    )


def test_cell_label_names_the_data_set_of_a_perplexity_cell():
    assert cell_label(_cell(task="perplexity", settings=PerplexitySettings(dataset="tinystories"))) == (
        "gam lm train_step float32 B=8 T=128 d_model=64 tinystories"
    )
    assert "tinystories" not in cell_label(_cell())


def test_summary_of_perplexity_cells_shows_the_final_validation_perplexity():
    row = {
        "task": "perplexity",
        "model": "gam",
        "dataset": "wikitext-2",
        "status": "ok",
        "tokens_seen": 1228800,
        "val_loss": 5.733,
        "val_ppl": 308.9,
        "duration_s": 412.0,
    }
    failed = {**row, "model": "transformer", "status": "error", "val_ppl": None, "duration_s": 3.0}
    text = _render(summary_table([row, failed], "t"))
    gam_line = next(line for line in text.splitlines() if "gam" in line)
    assert [cell.strip() for cell in gam_line.split("│")[1:-1]] == [
        "gam",
        "wikitext-2",
        "ok",
        "1,228,800",
        "5.733",
        "308.9",
        "412",
    ]
    assert "transformer │ wikitext-2 │ error" in text


def test_summary_of_throughput_cells_shows_time_and_memory():
    row = {
        "task": "throughput",
        "model": "gam",
        "level": "block",
        "mode": "forward",
        "dtype": "float32",
        "batch_size": 2,
        "seq_len": 64,
        "status": "ok",
        "time_ms": 1.234,
        "tokens_per_s": 103728.0,
        "peak_mem_bytes": 3 * 2**20,
    }
    text = _render(summary_table([row], "t"))
    assert "1.23" in text and "103728" in text and "│        3 │" in text


def test_a_models_backend_reason_is_printed_once_per_sweep_even_without_progress_lines():
    console = Console(width=200, record=True)
    reason = "mamba-ssm not importable (ImportError: undefined symbol); torch scan"
    rows = [
        {"status": "ok", "model": "mamba", "backend": "torch", "backend_reason": reason, "time_ms": 1.0},
        {"status": "ok", "model": "mamba", "backend": "torch", "backend_reason": reason, "time_ms": 2.0},
        {"status": "ok", "model": "gam", "backend": "fused", "backend_reason": "", "time_ms": 1.0},
    ]
    with SweepProgress(3, console, enabled=False) as bar:
        for row in rows:
            bar.finish(make_cell(model=row["model"]), row)
    text = console.export_text()
    assert text.count(reason) == 1 and f"mamba: backend torch: {reason}" in text
    assert "gam:" not in text


def test_progress_lines_name_what_decode_and_recall_cells_measured():
    from gam_bench.tasks import get_task

    decode = {"status": "ok", "decode_ms_per_token": 6.94, "state_bytes": 3072, "prefill_ms": 12.0}
    assert get_task("decode").outcome(decode) == "6.94 ms/token  state 3.0 KiB"
    assert get_task("decode").outcome({"status": "ok", "prefill_ms": 12.0}) == "prefill 12.00 ms"
    recall = {"status": "ok", "accuracy": 0.992, "step": 400, "duration_s": 36.2}
    assert get_task("recall").outcome(recall) == "accuracy 0.992  400 steps  36 s"
