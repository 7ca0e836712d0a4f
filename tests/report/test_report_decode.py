"""The decode report section (gam_bench.report.decode) on synthetic decode rows."""

from __future__ import annotations

import json

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
    [
        (0.03, (-0.05, 0.1), "constant"),
        (0.97, (0.9, 1.05), "linear"),
        (2.1, None, "quadratic"),
        (0.5, None, "grows like N^0.50"),
        (0.52, (0.3, 1.3), "consistent with linear"),  # far from 1, but the CI holds 1 (and not 0)
        (0.1, (-0.6, 1.2), "constant"),  # near 0 and its CI holds 0 (and 1): the point estimate decides
        (0.21, (0.03, 0.53), "grows like N^0.21"),  # CI excludes 0 and 1
        (-0.34, (-0.88, -0.32), "falls like N^-0.34"),
        (0.15, (0.05, 0.35), "grows like N^0.15"),  # near 0, but its CI excludes 0
    ],
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


def test_a_decode_crossover_within_the_noise_is_listed_not_drawn():
    """Two models with one cost and 20% jitter: their medians swap by chance."""
    rng = np.random.default_rng(1)
    rows = []
    for n in LENGTHS:
        for model, bias in (("gam", 1.0), ("gam-twin", 1.0)):
            rows.append(_measured(model, n, 2.0 * bias, 2**20, 0.01 * n, rng))
            rows[-1]["decode_samples_ms"] = list(2.0 * (1 + 0.2 * rng.standard_normal(16)))
            rows[-1]["decode_ms_per_token"] = float(np.median(rows[-1]["decode_samples_ms"]))
    (group,) = rd.build_decode_groups(pd.DataFrame(rows))
    (c,) = group.crossovers
    assert c.kind == "measured" and rd.noise(group) == {("gam", "gam-twin"): False}
    assert "| within noise |" in rd.crossover_table(group)
    figure = rd.decode_figure(group, "decode", rd.palette(["gam", "gam-twin"]))
    assert not [line for line in figure.axes[0].lines if (line.get_gid() or "").startswith("crossover:")]


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


def _stored(rows: pd.DataFrame, mode="both") -> list[dict]:
    """The synthetic rows as the runner stores them: identity columns and a real config_json."""
    out = []
    for i, r in enumerate(rows[rows["task"] == "decode"].to_dict("records")):
        config = {"model": r["model"], "seq_len": r["seq_len"], "mode": mode, "decode": {"decode_tokens": 16}}
        r = {k: v for k, v in r.items() if not (isinstance(v, float) and np.isnan(v))}
        out.append(
            {
                **r,
                "mode": mode,
                "suite": "decode",
                "cell_id": f"{mode}-{i}",
                "run_id": f"run-{mode}-{i}",
                "started_at": pd.Timestamp("2026-12-01 11:00", tz="UTC"),
                "config_json": json.dumps(config, sort_keys=True),
            }
        )
    return out


def test_one_series_per_model_and_setting_not_per_context_length(rows):
    both = pd.DataFrame(_stored(rows))
    (group,) = rd.build_decode_groups(both)
    assert [s.label for s in group.series] == ["gam", "transformer"]  # config_json holds seq_len
    assert list(group.series[0].points["seq_len"]) == LENGTHS
    two_modes = pd.DataFrame(_stored(rows) + _stored(rows, mode="decode"))
    labels = [s.label for s in rd.build_decode_groups(two_modes)[0].series]
    assert labels == ["gam (mode=both)", "gam (mode=decode)", "transformer (mode=both)", "transformer (mode=decode)"]


def test_render_links_figures_in_a_subfolder(rows, tmp_path):
    text = rd.render_decode_section(rows, tmp_path, figures="figures")
    assert "](figures/decode-decode-cpu-lm-float32-b1.png)" in text
    assert sorted(p.name for p in (tmp_path / "figures").glob("*.png")) == [
        f"decode-{m}-cpu-lm-float32-b1.png" for m in ("decode", "prefill", "state")
    ]
    for heading in ("paper Table 2 layout", "Exponents and readings", "Crossovers of decode latency"):
        assert heading in text


def test_gam_bench_report_on_a_decode_results_folder(rows, tmp_path):
    from gam_bench import store
    from gam_bench.cli.main import main

    store.append(_stored(rows), tmp_path / "results")
    assert main(["report", str(tmp_path / "results"), "--out", str(tmp_path / "report")]) == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## Inference: prefill, decode latency and state vs context" in text
    assert "## Throughput" not in text  # decode rows make no throughput section
    assert "per-token decode latency constant in context" in text and "gam vs transformer" in text
    for metric in ("decode", "state", "prefill"):
        name = f"decode-{metric}-cpu-lm-float32-b1.png"
        assert (tmp_path / "report" / "figures" / name).stat().st_size > 0 and f"(figures/{name})" in text
    assert "OOM" in text.split("## Failed cells")[1]  # the failed decode cell is listed
