"""The roofline section: fraction of peak vs length per model and compile mode, and the
MFU column of the Table-2 layout. Built from the checked-in fixture plus a compiled copy of it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gam_bench.report import roofline, tables
from gam_bench.report.curves import build_groups
from gam_bench.report.markdown import render
from gam_bench.report.plots import palette, scaling_figure

PEAK = 5e10


def _compiled(rows: pd.DataFrame, mode: str, speedup: float) -> pd.DataFrame:
    """A copy of `rows` as if run with `compile: mode`: other cell ids, time / speedup."""
    configs = [json.dumps({**json.loads(c), "compile": mode}, sort_keys=True) for c in rows["config_json"]]
    return rows.assign(
        config_json=configs,
        cell_id=[f"{c}-{mode}" for c in rows["cell_id"]],
        run_id=[f"{r}-{mode}" for r in rows["run_id"]],
        compile=mode,
        time_ms=rows["time_ms"] / speedup,
        time_ms_q25=rows["time_ms_q25"] / speedup,
        time_ms_q75=rows["time_ms_q75"] / speedup,
        time_samples_ms=[None if s is None else np.asarray(s) / speedup for s in rows["time_samples_ms"]],
        flops_per_s=rows["flops_per_s"] * speedup,
    )


@pytest.fixture(scope="module")
def swept(newest) -> pd.DataFrame:
    rows = newest[(newest["task"] == "throughput") & (newest["mode"] == "forward")]
    rows = rows[rows["model"].isin(["gam", "transformer"])].assign(flops_per_s=lambda d: d["tokens_per_s"] * 1e6)
    both = pd.concat([rows.assign(compile="eager"), _compiled(rows, "default", 2.0)], ignore_index=True)
    return both.assign(peak_flops_per_s=PEAK, mfu=both["flops_per_s"] / PEAK)


def test_compile_modes_are_separate_series_and_never_pooled(swept):
    (group,) = build_groups(swept)
    labels = [s.label for s in group.series]
    assert labels == ["gam (compile=default)", "gam (compile=eager)", "transformer (compile=default)"] + [
        "transformer (compile=eager)"
    ]
    by = {s.label: s for s in group.series}
    fast, slow = by["gam (compile=default)"].ok, by["gam (compile=eager)"].ok
    assert np.allclose(fast["time_ms"].to_numpy() * 2, slow["time_ms"].to_numpy())


def test_fraction_of_peak_figure_plots_each_series_mfu(swept):
    (group,) = build_groups(swept)
    assert roofline.has_mfu(group)
    ax = scaling_figure(group, "mfu", palette([s.label for s in group.series])).axes[0]
    assert ax.get_ylabel().startswith("Fraction of matmul peak") and ax.get_yscale() == "log"
    for s in group.series:
        (line,) = [ln for ln in ax.lines if ln.get_gid() == f"series:{s.label}"]
        ok = s.ok[s.ok["mfu"].notna()]
        assert np.allclose(line.get_ydata(), ok["mfu"].to_numpy())
        assert np.allclose(line.get_xdata(), ok["seq_len"].to_numpy())


def test_table2_shows_mfu_only_when_asked(swept):
    (group,) = build_groups(swept)
    plain, with_mfu = tables.table2(group), tables.table2(group, mfu=True)
    assert "matmul peak" not in plain and plain.count("| Model |") == 2
    assert with_mfu.count("| Model |") == 3 and "**Fraction of the matmul peak**" in with_mfu
    s = group.series[0]
    first = s.ok.iloc[0]
    table = tables.by_length(group, "mfu")
    row = next(line for line in table.splitlines() if line.startswith(f"| {s.label} |"))
    assert row.split(" | ")[1] == tables.fmt_num(first["mfu"])


def test_report_has_the_roofline_figure_only_with_mfu(swept, tmp_path):
    text = render(swept, swept, tmp_path)
    assert "Fraction of peak vs sequence length" in text and "**Fraction of the matmul peak**" in text
    assert (tmp_path / "figures" / "cpu-block-forward-float32-b1-mfu.png").is_file()
    no_mfu = swept.assign(mfu=np.nan)
    text = render(no_mfu, no_mfu, tmp_path / "plain")
    assert "Fraction of peak" not in text and "matmul peak" not in text
    assert not roofline.has_mfu(build_groups(no_mfu)[0])
