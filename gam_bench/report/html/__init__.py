"""The self-contained HTML report (`gam-bench report --html`): report.html beside report.md.

One file that works offline: plotly.js is inlined (no CDN), every figure of the Markdown report
is embedded as data, and the page's own script and style are inlined too. It carries every
section of the Markdown report, rendered from its Markdown (so a task's new section appears
without a change here), and adds, where the rows allow, interactive log-log plots: hover for
the value with its IQR, toggle models in the legend, switch the metric (time, memory,
throughput, fraction of peak) and the axes (log or linear). Every table sorts by a click on
its header.

plotly and markdown are the optional `html` extra: `require` says how to install them.

Modules: sections (Markdown sections -> HTML, figures inlined), interactive (plotly figures of
the throughput groups), page (the document: controls, tables, script and style; assets/).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gam_bench.errors import UserError

HTML_NAME = "report.html"
INSTALL_HINT = "pip install 'gam-bench[html]'"


def require() -> None:
    """Raise UserError (one line, exit 2) when plotly or markdown is missing."""
    missing = []
    for module in ("plotly", "markdown"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise UserError(f"--html needs {' and '.join(missing)}, not installed here: {INSTALL_HINT}")


def write_html(out_dir: Path, markdown_text: str, newest: pd.DataFrame) -> Path:
    """Write out_dir/report.html from the Markdown report (figures under out_dir) and the
    newest rows it was made from; return its path. The same inputs give the same bytes."""
    from gam_bench.atomic import atomic_write
    from gam_bench.report.html import interactive, page, sections

    require()
    plots = interactive.plots(newest)
    parts = sections.split(markdown_text)
    body = [sections.to_html(part, out_dir, plots.get(part.title, "")) for part in parts]
    path = Path(out_dir) / HTML_NAME
    text = page.document(parts, body)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


__all__ = ["HTML_NAME", "INSTALL_HINT", "require", "write_html"]
