"""The report of the checked-in fixture matches the golden Markdown, byte for byte.

Refresh the golden file after an intended change of the report:
    GAM_BENCH_UPDATE_GOLDEN=1 python -m pytest -q tests/report/test_report_golden.py
and review the diff of tests/report/golden/report.md before committing it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pandas as pd
import pytest

from gam_bench import store
from gam_bench.report import write_report

GOLDEN = Path(__file__).parent / "golden" / "report.md"


def test_report_matches_golden(report_md):
    text = report_md.read_bytes()
    if os.environ.get("GAM_BENCH_UPDATE_GOLDEN") == "1":
        GOLDEN.write_bytes(text)
        pytest.skip("golden report refreshed")
    assert text == GOLDEN.read_bytes(), "report.md changed; see this module's docstring to refresh"


def test_same_results_give_same_bytes(report_md, fixture_path, tmp_path):
    again = write_report(fixture_path, tmp_path)
    assert again.read_bytes() == report_md.read_bytes()
    first = sorted((report_md.parent / "figures").glob("*.*"))
    second = sorted((tmp_path / "figures").glob("*.*"))
    assert [p.name for p in first] == [p.name for p in second]
    assert len(first) == 2 * 9  # (2 throughput groups x 3 metrics + 3 perplexity figures) x (PNG, SVG)
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_every_linked_figure_exists_and_is_small(report_md):
    text = report_md.read_text()
    links = [line.split("](")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]
    assert len(links) == 9
    for link in links:
        png = report_md.parent / link
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size < 60_000
        svg = png.with_suffix(".svg").read_text()
        assert svg.startswith("<?xml") and "<svg" in svg and "<dc:date>" not in svg  # vector beside it, no date


def test_fixture_matches_its_generator(fixture_path):
    """results/fixtures/report_small is what tests/report/make_fixture.py writes."""
    spec = importlib.util.spec_from_file_location("make_fixture", Path(__file__).parent / "make_fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = store.to_table([r for part in module.rows() for r in part]).to_pandas()
    stored = store.load(fixture_path)
    key = ["run_id", "cell_id", "step"]
    expected = expected.sort_values(key, na_position="first").reset_index(drop=True)
    stored = stored.sort_values(key, na_position="first").reset_index(drop=True)
    pd.testing.assert_frame_equal(stored, expected)
