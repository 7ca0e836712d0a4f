"""The HTML report's builder, without a browser: one self-contained file (nothing loaded from
the network, every figure embedded), every section of the Markdown report, interactive plots
where the rows allow, the same bytes from the same rows, and a one-line error without the
html extra. The browser tests are tests/browser/test_html_report.py."""

from __future__ import annotations

import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from gam_bench.cli.main import main

pytest.importorskip("plotly", reason="the HTML report needs the html extra (pip install 'gam-bench[html]')")
pytest.importorskip("markdown", reason="the HTML report needs the html extra (pip install 'gam-bench[html]')")


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text of h2 headings."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.h2: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_h2 = tag == "h2"
        if self._in_h2:
            self.h2.append("")

    def handle_endtag(self, tag):
        self._in_h2 = self._in_h2 and tag != "h2"

    def handle_data(self, data):
        if self._in_h2:
            self.h2[-1] += data


@pytest.fixture(scope="module")
def html_report(fixture_path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("html")
    assert main(["report", str(fixture_path), "-o", str(out), "--html"]) == 0
    return out / "report.html"


@pytest.fixture(scope="module")
def tags(html_report) -> Tags:
    parser = Tags()
    parser.feed(html_report.read_text(encoding="utf-8"))
    return parser


def test_nothing_is_loaded_from_outside_the_file(tags):
    for tag, attrs in tags.tags:
        assert "src" not in attrs or attrs["src"].startswith("data:"), (tag, attrs.get("src", "")[:80])
        if tag in ("link", "script", "iframe", "object", "embed", "source"):
            assert not attrs.get("href") and not attrs.get("src") and not attrs.get("data"), (tag, attrs)
    scripts = [a for t, a in tags.tags if t == "script"]
    assert len(scripts) >= 3  # plotly.js, the figures' JSON, the page's script: all inline
    images = [a for t, a in tags.tags if t == "img"]
    assert len(images) == 9 and all(a["src"].startswith("data:image/svg+xml;base64,") for a in images)


def test_every_section_of_the_markdown_report_is_there(html_report, tags):
    markdown = (html_report.parent / "report.md").read_text()
    expected = [line[3:].strip() for line in markdown.splitlines() if line.startswith("## ")]
    assert tags.h2 == expected and len(expected) >= 6
    contents = [a["href"] for t, a in tags.tags if t == "a" and a.get("href", "").startswith("#")]
    ids = {a["id"] for t, a in tags.tags if t == "h2"}
    assert {c[1:] for c in contents} >= ids  # the contents bar links every section


def test_a_section_the_html_builder_has_never_seen_is_carried(tmp_path):
    from gam_bench.report.html import sections

    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "front.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    text = "# r\n\nintro\n\n## Quality–cost frontier\n\n![Frontier](figures/front.png)\n\n"
    text += "| a | b |\n| --- | ---: |\n| 1 | 2 |\n"
    parts = sections.split(text)
    assert [p.title for p in parts] == ["", "Quality–cost frontier"]
    html = sections.to_html(parts[1], tmp_path)
    assert "<h2" in html and "Quality–cost frontier" in html and "<table>" in html
    assert 'src="data:image/png;base64,' in html
    missing = sections.to_html(sections.split("## X\n\n![gone](figures/gone.png)\n")[0], tmp_path)
    assert "figures/gone.png is missing" in missing  # said, not dropped


def test_throughput_groups_get_interactive_plots_with_every_metric(html_report):
    text = html_report.read_text(encoding="utf-8")
    boxes = re.findall(r'<div class="interactive" data-plot="([^"]+)">', text)
    assert boxes == ["cpu-block-forward-float32-b1", "cpu-block-forward_backward-float32-b1"]
    blobs = re.findall(r'<script type="application/json" class="figures">(.*?)</script>', text, re.S)
    figures = json.loads(blobs[0])
    assert sorted(figures) == ["memory", "throughput", "time"]  # no fraction of peak in these rows
    time = figures["time"]
    names = [t["name"] for t in time["data"]]
    assert names == ["gam", "mamba", "transformer", "transformer-naive", "failed cells"]
    assert [t["name"] for t in figures["memory"]["data"]] == names  # same order: toggles carry over
    gam = time["data"][0]
    assert gam["x"][0] == 256 and "IQR" in gam["text"][0] and gam["error_y"]["visible"] is True
    assert figures["memory"]["data"][0]["error_y"]["visible"] is False  # one measurement per cell
    assert time["layout"]["xaxis"]["type"] == "log" and time["layout"]["yaxis"]["type"] == "log"
    failed = time["data"][-1]["text"]
    assert any("OOM" in t for t in failed) and any("timeout" in t for t in failed)


def test_same_rows_give_the_same_bytes(html_report, newest, tmp_path):
    """report.md's figures are byte-stable (test_report_golden); so is the page built on them."""
    import shutil

    from gam_bench.report import judged_memory
    from gam_bench.report.html import write_html

    shutil.copytree(html_report.parent / "figures", tmp_path / "figures")
    text = (html_report.parent / "report.md").read_text(encoding="utf-8")
    again = write_html(tmp_path, text, judged_memory(newest))
    assert again.read_bytes() == html_report.read_bytes()


def test_without_the_html_extra_it_is_one_line_and_exit_2(fixture_path, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "plotly", None)  # import plotly -> ImportError
    assert main(["report", str(fixture_path), "-o", str(tmp_path / "out"), "--html"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'gam-bench[html]'" in err and "plotly" in err
    assert not (tmp_path / "out" / "report.md").exists()  # refused before any work


def test_plots_draw_the_grid_rows_in_the_report_s_colours(newest):
    """Search probes have their own section (report/fit.py): the plots leave them out, as the
    throughput section does, and colour each model as report.md's figures do."""
    from gam_bench.report import markdown
    from gam_bench.report.html import interactive

    probe = newest[(newest["task"] == "throughput") & (newest["model"] == "gam")].iloc[[0]]
    probe = probe.assign(search='{"kind": "probe"}', seq_len=1 << 20, cell_id="probe")
    rows = pd.concat([newest.assign(search=None), probe], ignore_index=True)
    blocks = interactive.plots(rows)
    figures = json.loads(re.search(r'class="figures">(.*?)</script>', blocks[next(iter(blocks))], re.S)[1])
    gam = figures["time"]["data"][0]
    assert gam["name"] == "gam" and (1 << 20) not in gam["x"]
    colors = markdown.report_colors(markdown.task_rows(rows))
    assert gam["line"]["color"] == colors["gam"]
