"""The decode report section (gam_bench.report.decode) on synthetic decode rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gam_bench.analysis import ExponentFit
from gam_bench.report import decode as rd

LENGTHS = [1024, 2048, 4096, 8192, 16384]


def _row(model, n, status="ok", batch=1, **values):
    return {
        "task": "decode",
        "device": "cpu",
        "level": "lm",
        "dtype": "float32",
        "batch_size": batch,
        "mode": "both",
        "model": model,
        "seq_len": n,
        "status": status,
        "config_json": "{}",
        **values,
    }


def _measured(model, n, decode_ms, state, prefill_ms, rng):
    samples = list(decode_ms * (1 + 0.02 * rng.standard_normal(16)))
    prefill = list(prefill_ms * (1 + 0.02 * rng.standard_normal(5)))
    return _row(
        model,
        n,
        decode_ms_per_token=float(np.median(samples)),
        decode_samples_ms=samples,
        state_bytes=state,
        prefill_ms=float(np.median(prefill)),
        prefill_samples_ms=prefill,
    )


@pytest.fixture
def rows() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    out = []
    for n in LENGTHS:
        out.append(_measured("gam", n, 2.0, 3 * 2**20, 0.01 * n, rng))  # constant decode and state
        if n < 16384:
            out.append(_measured("transformer", n, 0.0005 * n, 2 * n * 2**10, 1e-6 * n * n, rng))  # linear
    out.append(_row("transformer", 16384, status="oom"))
    out.append({**_row("gam", 1024), "task": "throughput"})  # not a decode row: ignored
    return pd.DataFrame(out)


def test_groups_series_and_fits(rows):
    (group,) = rd.build_decode_groups(rows)
    assert group.key == ("cpu", "lm", "float32", 1)
    gam, tr = group.series
    assert (gam.label, tr.label) == ("gam", "transformer")
    assert abs(gam.fits["decode"].slope) < 0.1 and gam.fits["decode"].has_ci
    assert tr.fits["decode"].slope == pytest.approx(1.0, abs=0.1)
    assert gam.fits["state"].slope == pytest.approx(0.0, abs=1e-9) and not gam.fits["state"].has_ci
    assert tr.fits["state"].slope == pytest.approx(1.0, abs=1e-9)
    assert tr.fits["prefill"].slope == pytest.approx(2.0, abs=0.1)
    assert 16384 not in tr.fits["decode"].window  # the OOM length is not fitted


def test_crossover_of_decode_latency(rows):
    (group,) = rd.build_decode_groups(rows)
    (c,) = group.crossovers
    # gam 2 ms constant, transformer 0.0005 N ms: equal at N = 4000 (measured between 2k and 4k).
    assert c.kind == "measured" and c.seq_len == pytest.approx(4000, rel=0.1)
    assert c.faster_beyond == "gam"


@pytest.mark.parametrize(
    ("slope", "ci", "words"),
    [(0.03, (-0.05, 0.1), "constant"), (0.97, (0.9, 1.05), "linear"), (2.1, None, "quadratic"), (0.5, None, "N^0.50")],
)
def test_reading(slope, ci, words):
    fit = ExponentFit(slope, 0.0, (1, 2, 3), *(ci or (float("nan"), float("nan"))))
    text = rd.reading(fit, "per-token decode latency")
    assert words in text and f"slope {slope:.2f}" in text
    assert ("95% CI" in text) == (ci is not None)
    assert rd.reading(None, "x") == "–"


def test_tables(rows):
    (group,) = rd.build_decode_groups(rows)
    table = rd.decode_table(group)
    lines = table.splitlines()
    assert lines[0].startswith("| Context N | gam decode (ms/token) | gam state (MiB) | gam prefill (ms)")
    last = lines[-1].split(" | ")
    assert last[0] == "| 16384" and last[2] == "3.00" and last[4:7] == ["OOM", "OOM", "OOM |"]
    exps = rd.exponent_table(group)
    assert "per-token decode latency constant in context" in exps
    assert "per-token decode latency linear in context" in exps
    assert "state size constant in context (slope 0.00)" in exps
    assert "prefill time quadratic in context" in exps
    assert "gam vs transformer" in rd.crossover_table(group)


def test_figures_have_series_fits_and_crossover(rows):
    (group,) = rd.build_decode_groups(rows)
    colors = rd.palette(["gam", "transformer"])
    fig = rd.decode_figure(group, "decode", colors)
    gids = {line.get_gid() for line in fig.axes[0].lines}
    assert {"series:gam", "series:transformer", "fit:gam", "fit:transformer", "crossover:gam|transformer"} <= gids
    state = rd.decode_figure(group, "state", colors)
    (gam_line,) = [line for line in state.axes[0].lines if line.get_gid() == "series:gam"]
    assert np.allclose(gam_line.get_ydata(), 3.0)  # MiB


def test_render_writes_figures(rows, tmp_path):
    text = rd.render_decode_section(rows, tmp_path)
    assert text.startswith("## Inference")
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == [f"decode-{m}-cpu-lm-float32-b1.png" for m in ("decode", "prefill", "state")]
    assert all(name in text for name in pngs)
    assert rd.render_decode_section(rows[rows["task"] != "decode"], tmp_path) == ""


def test_prefill_only_rows_leave_decode_empty(tmp_path):
    measured = {"prefill_samples_ms": [1.0], "state_bytes": 8}
    rows = pd.DataFrame([_row("gam", n, prefill_ms=0.01 * n, **measured) for n in LENGTHS])
    (group,) = rd.build_decode_groups(rows)
    assert group.series[0].fits["decode"] is None and group.series[0].fits["prefill"] is not None
    texts = rd.decode_figure(group, "decode", {"gam": "#000"}).axes[0].texts
    assert "no cell measured this" in [t.get_text() for t in texts]
    assert rd.render_decode_section(rows, tmp_path)
