"""The browser harness itself: it sees a console error, a drawn page and a blank one."""

from __future__ import annotations


def test_harness_reports_console_errors_and_draws(chrome, open_page, is_blank, tmp_path):
    good = tmp_path / "good.html"
    good.write_text("<html><body style='background:#fff'><h1 style='color:#000'>drawn</h1></body></html>")
    assert open_page(good) == []
    assert not is_blank(chrome.get_screenshot_as_png())

    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>throw new Error('boom from the page')</script></body></html>")
    errors = open_page(bad)
    assert any("boom from the page" in e["message"] for e in errors)

    blank = tmp_path / "blank.html"
    blank.write_text("<html><body style='margin:0;background:#fff'></body></html>")
    assert open_page(blank) == []
    assert is_blank(chrome.get_screenshot_as_png())
