"""The Markdown report's sections as HTML, whatever sections the tasks wrote.

The report is split at its level-2 headings ("## "): the text before the first one is the
header. Each part is rendered with the `markdown` package (tables, heading ids), and every
figure it links (`figures/*.png`) is embedded as data: the SVG beside the PNG when there is
one, the PNG otherwise. A figure a link names but the folder lacks is left as a link, with a
visible note, rather than dropped silently.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path

IMG = re.compile(r'<img alt="(?P<alt>[^"]*)" src="(?P<src>[^"]+)"\s*/?>')
IMAGES_ONLY = re.compile(r"<p>(?:\s*<img [^>]*>\s*)+</p>")


@dataclass(frozen=True)
class Section:
    title: str  # the heading's text ("" for the header before the first heading)
    markdown: str

    @property
    def anchor(self) -> str:
        """The id the markdown package's toc extension gives the heading."""
        from markdown.extensions.toc import slugify

        return slugify(self.title, "-")


def split(text: str) -> list[Section]:
    """The report's Markdown -> its header and one Section per level-2 heading."""
    parts: list[Section] = []
    title, lines = "", []
    for line in text.splitlines(keepends=True):
        if line.startswith("## "):
            if title or "".join(lines).strip():
                parts.append(Section(title, "".join(lines)))
            title, lines = line[3:].strip(), []
        lines.append(line)
    parts.append(Section(title, "".join(lines)))
    return parts


def to_html(section: Section, base: Path, interactive: str = "") -> str:
    """One section as HTML: figures embedded; `interactive` (plots) goes after its heading and
    then the static figures fold away under a "Static figures" summary."""
    import markdown

    html = markdown.markdown(section.markdown, extensions=["tables", "toc", "sane_lists"], output_format="html")
    html = IMG.sub(lambda m: _embedded(m["alt"], m["src"], base), html)
    if interactive:
        html = IMAGES_ONLY.sub(lambda m: f"<details><summary>Static figures</summary>{m[0]}</details>", html)
        heading_end = html.find("</h2>")
        cut = heading_end + len("</h2>") if heading_end >= 0 else 0
        html = html[:cut] + "\n" + interactive + html[cut:]
    return f'<section class="report-section">\n{html}\n</section>\n'


def _embedded(alt: str, src: str, base: Path) -> str:
    png = base / src
    svg = png.with_suffix(".svg")
    if svg.is_file():
        data, kind = svg.read_bytes(), "image/svg+xml"
    elif png.is_file():
        data, kind = png.read_bytes(), "image/png"
    else:
        return f'<span class="missing">figure {src} is missing from {base}</span>'
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img class="figure" alt="{alt}" src="data:{kind};base64,{encoded}">'
