"""The HTML document around the report's sections: a contents bar, the page's style and
script (assets/), and plotly.js inlined, so the file works offline."""

from __future__ import annotations

import html
from importlib import resources

from gam_bench.report.html.sections import Section


def asset(name: str) -> str:
    return resources.files("gam_bench.report.html").joinpath("assets", name).read_text(encoding="utf-8")


def document(parts: list[Section], bodies: list[str]) -> str:
    """The page: `parts` (header first) with their HTML `bodies`, in order."""
    from plotly.offline import get_plotlyjs

    title = _title(parts[0].markdown) if parts else "gam-bench report"
    contents = "".join(
        f'<li><a href="#{html.escape(p.anchor)}">{html.escape(p.title)}</a></li>' for p in parts if p.title
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="generator" content="gam-bench report --html">\n'
        f"<title>{html.escape(title)}</title>\n"
        f"<style>\n{asset('report.css')}</style>\n"
        f'<script type="text/javascript">{get_plotlyjs()}</script>\n'
        "</head>\n<body>\n"
        f'<nav class="toc" aria-label="sections"><ul>{contents}</ul></nav>\n'
        "<main>\n" + "".join(bodies) + "</main>\n"
        f"<script>\n{asset('report.js')}</script>\n"
        "</body>\n</html>\n"
    )


def _title(header: str) -> str:
    for line in header.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return "gam-bench report"
