"""The HTML report (`gam-bench report --html`) in a real headless Chromium: it loads offline
with no console errors, draws its plots, a legend click hides a model, the metric and axes
switches redraw, hover shows the IQR, and a table sorts. Built from the checked-in fixture
rows (results/fixtures/report_small) into tmp_path; the page is loaded once per module and
each test sets the state it needs.

GAM_BENCH_SCREENSHOTS=DIR keeps the screenshots the tests take (reports/example/screenshots/
were taken that way, from the example report)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

pytest.importorskip("plotly", reason="the HTML report needs the html extra (pip install 'gam-bench[html]')")
pytest.importorskip("markdown", reason="the HTML report needs the html extra (pip install 'gam-bench[html]')")

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(os.environ.get("GAM_BENCH_HTML_RESULTS", ROOT / "results" / "fixtures" / "report_small"))
BOX = ".interactive"  # the first throughput group's plot


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    from gam_bench.report import write_report

    out = tmp_path_factory.mktemp("html-report")
    write_report(FIXTURE, out, html=True)
    return out / "report.html"


@pytest.fixture(scope="module")
def loaded(chrome, page_loader, report):
    """The console errors of loading the report (once for the module)."""
    errors = page_loader(report)
    _wait(chrome, lambda d: all(_state(d, b) for b in range(_count(d))))
    return errors


def _count(driver) -> int:
    return driver.execute_script("return document.querySelectorAll('.interactive').length")


def _state(driver, index: int = 0) -> str | None:
    return driver.execute_script(
        "return document.querySelectorAll('.interactive')[arguments[0]].getAttribute('data-drawn')", index
    )


def _wait(driver, condition, timeout: float = 20.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def _gd(driver, expression: str):
    """Evaluate `expression` with gd = the first plot's plotly div."""
    return driver.execute_script(f"var gd = document.querySelector('{BOX} .plot'); return {expression};")


def _set(driver, metric: str = "time", axes: str = "log") -> None:
    """Choose metric and axes through the page's own <select> controls; wait for the redraw."""
    from selenium.webdriver.support.ui import Select

    box = driver.find_element("css selector", BOX)
    Select(box.find_element("css selector", "select.metric")).select_by_value(metric)
    Select(box.find_element("css selector", "select.axes")).select_by_value(axes)
    _wait(driver, lambda d: _state(d) == f"{metric}|{axes}")


def _show_all(driver) -> None:
    _gd(driver, "Plotly.restyle(gd, {visible: true}) && null")
    _wait(driver, lambda d: _gd(d, "gd.data.every(t => t.visible === true)"))


def _screenshot(element, name: str) -> bytes:
    png = element.screenshot_as_png
    keep = os.environ.get("GAM_BENCH_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / name).write_bytes(png)
    return png


def test_page_loads_offline_without_console_errors(chrome, loaded):
    assert loaded == []
    loads = chrome.execute_script(
        "return performance.getEntriesByType('resource').map(function (e) { return e.name; })"
    )
    assert not [name for name in loads if name.startswith(("http:", "https:"))]
    assert chrome.execute_script("return typeof Plotly") == "object"  # the inlined plotly.js ran
    headings = chrome.execute_script("return Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
    assert headings[0] == "Environment" and headings[-1] == "Method"
    assert any(h.startswith("Throughput: ") for h in headings) and "Failed cells" in headings
    chrome.execute_script("window.scrollTo(0, 0)")
    keep = os.environ.get("GAM_BENCH_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / "page-top.png").write_bytes(chrome.get_screenshot_as_png())


def test_plots_render(chrome, loaded, is_blank):
    _set(chrome, "time", "log")
    box = chrome.find_element("css selector", BOX)
    chrome.execute_script("arguments[0].scrollIntoView()", box)
    assert not is_blank(_screenshot(box, "plot-time-log.png"))
    models = _gd(chrome, "gd.data.filter(t => t.name !== 'failed cells').length")
    drawn = _gd(chrome, "gd.querySelectorAll('.scatterlayer .trace').length")
    points = _gd(chrome, "gd.querySelectorAll('.scatterlayer .point').length")
    assert models >= 2 and drawn >= models and points >= 2 * models
    assert _gd(chrome, "gd.querySelectorAll('.legend .traces').length") >= models


def test_legend_click_hides_a_model_and_a_second_click_shows_it(chrome, loaded, is_blank):
    _set(chrome, "time", "log")
    _show_all(chrome)
    box = chrome.find_element("css selector", BOX)
    chrome.execute_script("arguments[0].scrollIntoView()", box)
    before = _screenshot(box, "plot-all-models.png")
    first = _gd(chrome, "gd.data[0].name")
    item = box.find_elements("css selector", ".legend .traces")[0]
    assert item.text == first
    item.click()
    _wait(chrome, lambda d: _gd(d, "gd.data[0].visible") == "legendonly")
    after = _screenshot(box, f"plot-without-{first}.png")
    assert after != before and not is_blank(after)
    assert _gd(chrome, "gd.data.slice(1).every(t => t.visible !== 'legendonly')")  # only that model
    # a hidden model stays hidden when the metric changes
    _set(chrome, "memory", "log")
    assert _gd(chrome, "gd.data[0].visible") == "legendonly"
    box.find_elements("css selector", ".legend .traces")[0].click()
    _wait(chrome, lambda d: _gd(d, "gd.data[0].visible") is True)


def test_metric_and_axes_switches_redraw(chrome, loaded):
    _set(chrome, "time", "log")
    time_y = _gd(chrome, "gd.data[0].y")
    assert "time" in _gd(chrome, "gd.layout.yaxis.title.text").lower()
    for metric, words in [("memory", "memory"), ("throughput", "tokens/s")]:
        _set(chrome, metric, "log")
        assert words in _gd(chrome, "gd.layout.yaxis.title.text").lower()
        assert _gd(chrome, "gd.data[0].y") != time_y
        assert _gd(chrome, "gd._fullLayout.yaxis.type") == "log"
    _set(chrome, "throughput", "linear")
    assert _gd(chrome, "[gd._fullLayout.xaxis.type, gd._fullLayout.yaxis.type]") == ["linear", "linear"]
    box = chrome.find_element("css selector", BOX)
    _screenshot(box, "plot-throughput-linear.png")
    _set(chrome, "time", "log")
    assert _gd(chrome, "[gd._fullLayout.xaxis.type, gd._fullLayout.yaxis.type]") == ["log", "log"]


def test_hover_shows_the_value_with_its_iqr(chrome, loaded):
    _set(chrome, "time", "log")
    _gd(chrome, "Plotly.Fx.hover(gd, [{curveNumber: 0, pointNumber: 0}])")
    text = _wait(chrome, lambda d: _gd(d, "(gd.querySelector('.hoverlayer') || {}).textContent"))
    name = _gd(chrome, "gd.data[0].name")
    assert name in text and "time" in text and "ms" in text and "IQR" in text
    _screenshot(chrome.find_element("css selector", BOX), "plot-hover.png")


def test_a_table_sorts_by_a_header_click(chrome, loaded):
    table = next(
        t
        for t in chrome.find_elements("css selector", ".report-section table")
        if t.find_elements("css selector", "thead th")[0].text == "Model"
        and re.fullmatch(r"\d+k?", t.find_elements("css selector", "thead th")[1].text)
    )
    header = table.find_elements("css selector", "thead th")[1]
    chrome.execute_script("arguments[0].scrollIntoView()", table)

    def column():
        cells = [r.find_elements("css selector", "td")[1].text for r in table.find_elements("css selector", "tbody tr")]
        return [float(c.replace(",", "")) for c in cells if c and c[0].isdigit()]

    header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    ascending = column()
    assert len(ascending) >= 2 and ascending == sorted(ascending)
    header.click()
    assert header.get_attribute("aria-sort") == "descending"
    assert column() == sorted(ascending, reverse=True)
    _screenshot(table, "table-sorted.png")
