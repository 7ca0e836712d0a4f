"""Markdown tables: Table 2 layout with failed cells, status counts, exponents, crossovers."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from gam_bench import store
from gam_bench.report import tables
from gam_bench.report.curves import build_groups


def cells_of(table: str) -> list[list[str]]:
    """The body rows of a Markdown table, split into stripped cells."""
    lines = [line for line in table.strip().splitlines()[2:]]
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]


def header_of(table: str) -> list[str]:
    return [c.strip() for c in table.splitlines()[0].strip("|").split(" | ")]


def test_table2_is_split_into_a_table_per_quantity_with_a_row_per_model(groups):
    time = tables.by_length(groups["forward"], "time")
    memory = tables.by_length(groups["forward"], "memory")
    assert header_of(time) == header_of(memory) == ["Model", "256", "512", "1k", "2k", "4k"]
    rows = {r[0]: dict(zip(header_of(time), r)) for r in cells_of(time)}
    assert list(rows) == ["gam", "mamba", "transformer", "transformer-naive"]
    assert rows["transformer-naive"]["2k"] == "OOM"
    assert rows["transformer-naive"]["4k"] == "skipped"
    assert rows["mamba"]["4k"] == "timeout"
    assert rows["gam"]["1k"] not in ("error", "OOM")  # the re-run ok attempt wins
    assert {r[0]: r for r in cells_of(memory)}["transformer-naive"][4] == "OOM"
    both = tables.table2(groups["forward"])
    assert both.count("| Model |") == 2 and "**Median time per call (ms)**" in both and "**Peak memory (MiB)**" in both


def test_table2_values_are_the_stored_medians_and_peaks(groups, newest):
    row = newest[(newest["model"] == "gam") & (newest["seq_len"] == 512) & (newest["mode"] == "forward")].iloc[0]
    time = {r[0]: r for r in cells_of(tables.by_length(groups["forward"], "time"))}
    memory = {r[0]: r for r in cells_of(tables.by_length(groups["forward"], "memory"))}
    assert time["gam"][2] == tables.fmt_num(row["time_ms"])  # column 2: 512
    assert memory["gam"][2] == tables.fmt_num(row["peak_mem_bytes"] / 2**20)


def test_status_summary_counts_newest_attempts(newest):
    table = tables.status_summary(newest)
    header = header_of(table)
    rows = {(r[0], r[1]): dict(zip(header, r)) for r in cells_of(table)}
    naive = rows[("throughput", "transformer-naive")]
    assert (naive["ok"], naive["oom"], naive["skipped"], naive["total"]) == ("3", "1", "1", "5")
    assert rows[("throughput", "gam")]["error"] == "0"  # the superseded error does not count
    assert rows[("perplexity", "mamba")]["oom"] == "1"
    assert rows[("perplexity", "gam")]["total"] == "1"  # three evaluation rows, one cell
    total = rows[("**all**", "")]
    assert total["total"] == str(newest["cell_id"].nunique())


def test_exponents_table_shows_slopes_intervals_and_window(groups):
    rows = {r[0]: r for r in cells_of(tables.exponents(groups["forward"]))}
    assert set(rows) == {"gam", "mamba", "transformer", "transformer-naive"}
    slope, ci, r2, mem_slope, window = rows["transformer-naive"][1:]
    assert 0.95 < float(r2) <= 1.0
    assert float(mem_slope) == pytest.approx(2.0, abs=0.01)  # 16 L^2 bytes
    assert ci.startswith("[") and window == "256–1k (3 lengths)"  # failed 2k/4k are left out
    low, high = (float(v) for v in ci.strip("[]").split(","))
    assert low <= float(slope) <= high


def test_crossover_table_names_pairs_and_basis(groups):
    rows = {r[0]: r for r in cells_of(tables.crossovers(groups["forward"]))}
    assert len(rows) == 6  # every pair of four models
    where, basis, beyond, _, mark = rows["gam vs transformer-naive"][1:]
    # gam: 0.002 L + 0.3 ms, naive: 2e-6 L^2 + 0.2 ms -> equal near L = 1,000
    assert 800 < int(where.strip("≈ ").replace(",", "")) < 1200
    # ... but at 1k, the only length above it, the two IQRs overlap: not a finding, not drawn
    assert basis == "within noise" and beyond == "–" and mark == ""
    where, basis, beyond, _, mark = rows["gam vs transformer"][1:]
    assert basis == "measured" and beyond == "gam" and mark == "B"  # B: after transformer vs naive at ≈ 623
    assert rows["transformer vs transformer-naive"][1:4] == ["≈ 623", "measured", "transformer"]


def test_failures_table_lists_every_failed_cell(newest):
    rows = cells_of(tables.failures(newest))
    found = {(r[2], r[3], r[4]) for r in rows}
    assert found == {
        ("transformer-naive", "2048", "OOM"),
        ("transformer-naive", "4096", "skipped"),
        ("mamba", "4096", "timeout"),
        ("mamba", "128", "OOM"),
    }


def test_failures_table_escapes_a_pipe_in_the_message(newest):
    """The raw line keeps the message's pipe escaped, so the row still has one cell per header."""
    failed = newest["status"] != "ok"
    first = newest.index[failed][0]
    table = tables.failures(newest.assign(error=newest["error"].where(newest.index != first, "boom | bang\nmore")))
    line = next(line for line in table.splitlines() if "boom" in line)
    assert "boom \\| bang" in line and "more" not in line
    assert len(re.split(r"(?<!\\)\|", line.strip()[1:-1])) == len(header_of(table))


def test_environment_lists_backends_and_threads(newest):
    rows = dict(r[:2] for r in cells_of(tables.environment(newest)))
    assert rows["Device"] == "cpu" and rows["Threads"] == "2" and rows["torch"] == "2.13.0+cpu"
    assert "transformer: sdpa" in rows["Backends that ran"]
    assert "transformer-naive: naive" in rows["Backends that ran"]


def test_markdown_table_escapes_pipes_and_newlines():
    table = tables.markdown_table(["a", "b"], [["x|y", "line1\nline2"]])
    assert cells_of(table) == [["x\\|y", "line1 line2"]]


@pytest.mark.parametrize(
    "value, text", [(1234.5, "1,234"), (12.345, "12.3"), (1.2345, "1.23"), (0.012345, "0.0123"), (None, "–")]
)
def test_fmt_num(value, text):
    assert tables.fmt_num(value) == text


def test_pooled_seeds_and_all_failed_series():
    """Two seeds on one point pool their repeats; a model with no ok cell still shows up."""
    base = {
        "task": "throughput",
        "level": "block",
        "mode": "forward",
        "dtype": "float32",
        "device": "cpu",
        "batch_size": 1,
        "seq_len": 256,
        "d_model": 8,
        "n_layers": 1,
        "started_at": pd.Timestamp("2025-01-01", tz="UTC"),
    }
    rows = [
        {
            **base,
            "cell_id": "a",
            "run_id": "1",
            "model": "gam",
            "status": "ok",
            "time_ms": 2.0,
            "time_samples_ms": [1.0, 2.0, 3.0],
            "peak_mem_bytes": 100,
            "tokens_per_s": 1.0,
        },
        {
            **base,
            "cell_id": "b",
            "run_id": "2",
            "model": "gam",
            "status": "ok",
            "time_ms": 5.0,
            "time_samples_ms": [4.0, 5.0, 6.0],
            "peak_mem_bytes": 300,
            "tokens_per_s": 1.0,
        },
        {**base, "cell_id": "c", "run_id": "3", "model": "mamba", "status": "error", "error": "boom"},
    ]
    (group,) = build_groups(store.to_table(rows).to_pandas())
    gam, mamba = group.series
    assert gam.points.loc[0, "time_ms"] == pytest.approx(3.5)  # median of the pooled six
    assert gam.points.loc[0, "peak_mem_bytes"] == pytest.approx(200)
    assert list(mamba.points["status"]) == ["error"] and mamba.time_fit is None
    assert cells_of(tables.by_length(group, "time"))[1] == ["mamba", "error"]
    assert cells_of(tables.by_length(group, "memory"))[1] == ["mamba", "error"]
