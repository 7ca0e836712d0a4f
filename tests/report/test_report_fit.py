"""The "Longest context that fits" section (report/fit.py) on hand-made probe rows: answers per
model from the stored probes, the words, and the markers on a throughput grid's curves."""

from __future__ import annotations

import json

import pandas as pd

from gam_bench import store
from gam_bench.report import fit
from gam_bench.report.markdown import render
from gam_bench.search.answers import stored_searches
from gam_bench.search.settings import SearchSettings

SEARCH = SearchSettings(start=1024, max_seq_len=8192, precision=0.05, multiple_of=256)


def row(model: str, seq_len: int, status: str, search: bool = True, task: str = "throughput", **values) -> dict:
    config = {
        "model": model,
        "overrides": {"d_model": 64},
        "seq_len": seq_len,
        "task": task,
        "level": "block",
        "mode": "forward_backward",
        "dtype": "float32",
        "batch_size": 1,
        "limits": {"mem_cap_gb": 2.0, "timeout_s": 60.0, "mem_cap_fraction": 0.75},
    }
    if not search:  # a grid cell: other limits and measure, the same model setting
        config["limits"] = {"timeout_s": 90.0, "mem_cap_fraction": 0.75}
    return {
        "task": task,
        "suite": "fit" if search else "field",
        "cell_id": json.dumps(config, sort_keys=True),
        "run_id": f"run-{model}-{seq_len}-{search}",
        "model": model,
        "family": model,
        "device": "cpu",
        "level": "block",
        "mode": "forward_backward",
        "dtype": "float32",
        "batch_size": 1,
        "d_model": 64,
        "n_layers": 1,
        "seq_len": seq_len,
        "status": status,
        "duration_s": 1.0,
        "config_json": json.dumps(config, sort_keys=True),
        "search": SEARCH.key() if search else None,
        "started_at": pd.Timestamp("2026-12-06T08:00:00Z") + pd.Timedelta(seconds=seq_len),
        "device_mem_total_bytes": 24 * 2**30,
        **values,
    }


PROBES = [
    row("gam", 1024, "ok"),
    row("gam", 2048, "ok"),
    row("gam", 4096, "ok"),
    row("gam", 8192, "ok", peak_mem_bytes=8 * 2**20),  # fits at max
    row("transformer", 1024, "ok"),
    row("transformer", 2048, "oom", error="can't allocate memory"),
    row("transformer", 1536, "ok"),
    row("transformer", 1792, "timeout"),
    row("transformer", 1536 + 128, "ok"),  # not a multiple of 256: never asked, but a success counts
]
GRID = [
    row(m, n, "ok", search=False, time_ms=float(n) / 100, peak_mem_bytes=n * 1000)
    for m in ("gam", "transformer")
    for n in (512, 1024, 2048)
]


def frame(rows: list[dict]) -> pd.DataFrame:
    return store.to_table(rows).to_pandas()


def test_answers_come_from_the_stored_probes():
    found = {s.model: s for s in stored_searches(frame(PROBES + GRID))}
    assert set(found) == {"gam", "transformer"}  # grid rows are not searches
    gam, transformer = found["gam"].answer, found["transformer"].answer
    assert (gam.fits, gam.fails, gam.status) == (8192, None, "fits at max")
    assert (transformer.fits, transformer.fails, transformer.fail_status) == (1664, 1792, "timeout")
    assert transformer.status == "converged"  # 1792 - 1664 = 128 <= one step of 256
    assert found["gam"].cap_text == "2 GiB" and found["gam"].cap_bytes == 2 * 2**30


def test_the_section_says_it_in_words_and_marks_the_curves(tmp_path):
    text = fit.section(frame(PROBES + GRID), tmp_path, "figures", {"gam": "#1f77b4", "transformer": "#ff7f0e"})
    assert text.startswith("## Longest context that fits\n")
    assert "| gam | 64 | 1 | ≥ 8,192 | 8 MiB | – | 2 GiB | 60 s | 4 | fits at max |" in text
    assert "| transformer | 64 | 1 | 1,664 | – | 1,792 (timeout) | 2 GiB | 60 s | 5 | converged |" in text
    assert "- transformer (d_model 64, 1 layer): trains on up to 1,664 tokens under 2 GiB and 60 s per cell" in text
    assert "- gam (d_model 64, 1 layer): trains on at least 8,192 tokens" in text
    assert (tmp_path / "figures" / "fit-longest.png").is_file()
    assert "### On the scaling curves" in text
    assert (tmp_path / "figures" / "fit-cpu-block-forward_backward-float32-b1-time.png").is_file()
    assert fit.section(frame(GRID), tmp_path, "figures", {}) == ""  # no search stored: no section


def test_markers_sit_on_the_matching_series():
    from gam_bench.report.curves import build_groups
    from gam_bench.report.plots import scaling_figure

    rows = frame(PROBES + GRID)
    group = build_groups(rows[rows["search"].isna()])[0]
    fits = fit._fits_of_group(rows[rows["search"].isna()], group, stored_searches(rows))
    assert fits == {"gam": 8192, "transformer": 1664}
    figure = scaling_figure(group, "memory", {"gam": "#1f77b4", "transformer": "#ff7f0e"}, fits=fits)
    lines = {line.get_gid(): line.get_xdata()[0] for line in figure.axes[0].get_lines() if line.get_gid()}
    assert lines["fits:gam"] == 8192 and lines["fits:transformer"] == 1664


def test_the_report_keeps_probes_out_of_the_task_sections(tmp_path, monkeypatch):
    from gam_bench.report import markdown, throughput

    seen = {}
    monkeypatch.setattr(throughput, "section", lambda rows, *a: seen.setdefault("task", rows) is None or "")
    monkeypatch.setattr(markdown.fit, "section", lambda rows, *a: seen.setdefault("fit", rows) is None or "## fit\n")
    newest = store.latest(frame(PROBES + GRID[:1]))
    text = render(newest, newest, tmp_path)
    assert seen["task"]["search"].isna().all() and len(seen["task"]) == 1  # a task draws its grid
    assert len(seen["fit"]) == len(PROBES) + 1  # the spanning section sees every row
    assert "## fit" in text


def test_failed_cells_leave_out_the_probes_that_bound_a_search(tmp_path):
    """A search's oom and timeout probes are its answer (its own section), not failures; a grid
    cell's oom and a probe that crashed still are."""
    crashed = row("gam", 16384, "error", error="worker died")
    grid_oom = row("transformer", 4096, "oom", search=False, error="out of memory")
    newest = store.latest(frame(PROBES + GRID + [crashed, grid_oom]))
    failed = render(newest, newest, tmp_path).split("## Failed cells", 1)[1].split("\n## ", 1)[0]
    assert "worker died" in failed and "out of memory" in failed
    assert "can't allocate memory" not in failed and "| 1792 |" not in failed  # transformer's search's bounds
    assert "Not listed: 2 search probes that ran out of memory or time" in failed

    only_bounds = store.latest(frame(PROBES))
    failed = render(only_bounds, only_bounds, tmp_path).split("## Failed cells", 1)[1]
    assert failed.startswith("\n\nNone: every cell finished ok. Not listed: 2 search probes")


def test_a_gpu_search_names_the_device_memory_it_ran_under():
    """mem_cap_fraction of the device's memory (a GPU profile): the cap in bytes from the rows."""
    probes = []
    for r in PROBES[:2]:
        config = json.loads(r["config_json"])
        config["limits"] = {"mem_cap_fraction": 1.0, "timeout_s": 120.0}
        probes.append({**r, "device": "cuda", "config_json": json.dumps(config), "device_mem_total_bytes": 80 * 2**30})
    (found,) = stored_searches(frame(probes))
    assert found.cap_bytes == 80 * 2**30
    assert found.cap_text == "1 × device memory = 80.0 GiB"
