"""The history site in a real browser (headless Chromium): every kind of page loads with no
console errors, its plots are drawn, a click on a legend entry hides that series, and a click
on a column header sorts the summary."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("plotly")
pytest.importorskip("ruptures")

_spec = importlib.util.spec_from_file_location(
    "fake_history", Path(__file__).resolve().parents[1] / "history" / "fake_history.py"
)
fake = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from gam_bench.history import build_history

    root = tmp_path_factory.mktemp("history-site")
    steps = {("gam", "time"): (6, 1.5), ("mamba", "ops"): (4, 1.25), ("transformer", "memory"): (7, 0.5)}
    folders = fake.write_history(root / "results", 8, steps)
    build_history(folders, root / "site", recent=8)
    return root / "site"


def _plot_png(chrome, div_id: str = "plot-0") -> bytes:
    from selenium.webdriver.common.by import By

    element = chrome.find_element(By.ID, div_id)
    chrome.execute_script("arguments[0].scrollIntoView();", element)
    return element.screenshot_as_png


def _wait_drawn(chrome, div_id: str = "plot-0") -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(chrome, 20).until(
        lambda d: d.execute_script(
            "var g = document.getElementById(arguments[0]); return !!(g && g._fullLayout && "
            "g.querySelectorAll('.scatterlayer .trace').length);",
            div_id,
        )
    )


def test_every_page_loads_without_console_errors(site, open_page):
    pages = [site / "index.html", *sorted(site.glob("metric-*.html")), *sorted((site / "cells").glob("*.html"))]
    assert len(pages) == 1 + 3 + 3
    for page in pages:
        assert open_page(page) == [], page.name


def test_cell_page_plots_are_drawn(site, chrome, open_page, is_blank):
    page = next(p for p in (site / "cells").glob("*.html") if "gam block" in p.read_text())
    assert open_page(page) == []
    for i in range(3):  # ops, memory, time
        _wait_drawn(chrome, f"plot-{i}")
        assert not is_blank(_plot_png(chrome, f"plot-{i}"))
    drawn = chrome.execute_script("return document.getElementById('plot-2').data.map(t => t.name)")
    # time: the band (two edges), the median, the fitted level and its change point
    assert drawn == [None, "interquartile range", "median", "fitted level", "change point"]


def test_clicking_a_legend_entry_hides_that_cell(site, chrome, open_page, is_blank):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    assert open_page(site / "metric-time.html") == []
    _wait_drawn(chrome)
    before = _plot_png(chrome)
    assert not is_blank(before)
    names = chrome.execute_script("return document.getElementById('plot-0').data.map(t => t.name)")
    assert len(names) == 3 and all("throughput" in n for n in names)
    toggles = chrome.find_elements(By.CSS_SELECTOR, "#plot-0 .legend .traces .legendtoggle")
    assert len(toggles) == 3
    toggles[0].click()  # plotly acts after its double-click delay (300 ms)
    visible = "return document.getElementById('plot-0').data.map(t => t.visible)"
    WebDriverWait(chrome, 10).until(lambda d: d.execute_script(visible)[0] == "legendonly")
    assert "legendonly" not in chrome.execute_script(visible)[1:]
    assert chrome.execute_script("return document.querySelectorAll('#plot-0 .scatterlayer .trace').length") == 2
    assert _plot_png(chrome) != before


def test_clicking_a_summary_header_sorts_the_steps(site, chrome, open_page):
    from selenium.webdriver.common.by import By

    assert open_page(site / "index.html") == []
    sizes = lambda: [td.text for td in chrome.find_elements(By.CSS_SELECTOR, "#steps tbody tr td:first-child")]  # noqa: E731
    first = sizes()
    assert len(first) == 3 and first[0].startswith("-50")  # largest |size| first
    header = chrome.find_element(By.CSS_SELECTOR, "#steps thead th:first-child")
    header.click()
    ascending = sizes()
    assert [float(s.rstrip("%")) for s in ascending] == sorted(float(s.rstrip("%")) for s in first)
    header.click()
    assert sizes() == ascending[::-1]
