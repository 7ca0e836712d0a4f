"""The HTML around the history's figures: one page shell, escaped tables, sortable columns.

Every page loads plotly.js from the site's own `plotly.min.js` (written once next to
index.html), so the site works offline and from file://. A table with class `sortable` sorts
by a click on a column header (again: the other way); a cell's `data-sort` attribute, when it
has one, is what it sorts by (numbers as numbers).

No torch here.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

PLOTLY_JS = "plotly.min.js"

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem auto; max-width: 1200px;
       padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; font-size: 0.9rem; margin: 0.5rem 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: #999; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.worse { color: #b00020; font-weight: 600; } .better { color: #1b7a1b; font-weight: 600; }
.note { color: #555; font-size: 0.9rem; } code { font-size: 0.85rem; }
nav a { margin-right: 1rem; }
"""

_SORT_JS = """
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0], col = th.cellIndex;
    var dir = th.dataset.dir === "asc" ? "desc" : "asc";
    table.querySelectorAll("th").forEach(function (h) { delete h.dataset.dir; });
    th.dataset.dir = dir;
    var key = function (row) {
      var cell = row.cells[col], v = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent;
      var n = parseFloat(v);
      return isNaN(n) ? v.toLowerCase() : n;
    };
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a), y = key(b), c = x < y ? -1 : x > y ? 1 : 0;
      return dir === "asc" ? c : -c;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def shell(title: str, body: str, root: str = "") -> str:
    """A whole page: `root` is the path from the page to the site's top ("" or "../")."""
    nav = f'<nav><a href="{root}index.html">summary</a></nav>'
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{esc(title)}</title>\n<style>{_STYLE}</style>\n"
        f'<script src="{root}{PLOTLY_JS}" charset="utf-8"></script>\n</head>\n<body>\n'
        f"{nav}\n<h1>{esc(title)}</h1>\n{body}\n<script>{_SORT_JS}</script>\n</body>\n</html>\n"
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], table_id: str, sortable: bool = True) -> str:
    """An HTML table; each cell is already HTML (a `<td>` is added unless it starts with one)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "\n".join(
        "<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row) + "</tr>" for row in rows
    )
    cls = ' class="sortable"' if sortable else ""
    return f'<table id="{esc(table_id)}"{cls}>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>'


def num(text: str, sort: float | int | None = None) -> str:
    """A right-aligned table cell, sorted by `sort` when given."""
    attr = f' data-sort="{sort!r}"' if sort is not None else ""
    return f'<td class="num"{attr}>{text}</td>'
