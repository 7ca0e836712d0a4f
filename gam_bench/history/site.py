"""Writing the history site: a summary page, a page per cell, a page per metric.

    SITE/index.html          the largest recent steps (sortable), the cells, the commits
    SITE/metric-<name>.html  one metric across all cells, relative to each cell's first commit
    SITE/cells/<id>.html     one cell: a trend per metric, with its change points
    SITE/plotly.min.js       plotly.js, once (no CDN: the site works offline, from file://)

Every file is written atomically. A folder that already holds a history site (the marker file
`.gam-bench-history`) is rebuilt in place, its old pages removed; any other non-empty folder is
refused, so nothing of the user's is overwritten. No torch here.
"""

from __future__ import annotations

import hashlib
import math
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gam_bench.atomic import atomic_write
from gam_bench.errors import UserError
from gam_bench.history import figures
from gam_bench.history.commits import Commit
from gam_bench.history.page import PLOTLY_JS, esc, num, shell, table
from gam_bench.history.trends import Trend

MARKER = ".gam-bench-history"


@dataclass(frozen=True)
class Built:
    """What was written: the site's folder, its commits, trends and change points."""

    out: Path
    commits: int
    cells: int
    trends: int
    steps: int
    recent_steps: int


def prepare(out: Path) -> None:
    """Make `out` ready for a (re)build: new, empty, or an earlier history site (cleared)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out: {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise UserError(f"--out: {out} is not empty and holds no history site ({MARKER}); give a new folder")
    if (out / MARKER).is_file():
        shutil.rmtree(out / "cells", ignore_errors=True)
        for page in out.glob("*.html"):
            page.unlink()
    out.mkdir(parents=True, exist_ok=True)
    _write(out / MARKER, "gam-bench history site: `gam-bench history` may rebuild this folder\n")


def write_site(out: Path, trends: list[Trend], commits: list[Commit], ordering: str, recent: int) -> Built:
    """Write every page of the site into `out` (see the module's docstring)."""
    import plotly
    import plotly.graph_objects as go

    prepare(out)
    _write(out / PLOTLY_JS, plotly.offline.get_plotlyjs())
    pages = {trend.series: f"cells/{_slug(trend.series)}.html" for trend in trends}
    by_cell: dict[str, list[Trend]] = defaultdict(list)
    by_metric: dict[str, list[Trend]] = defaultdict(list)
    for trend in trends:
        by_cell[trend.series].append(trend)
        by_metric[trend.name].append(trend)
    for series, cell in by_cell.items():
        _write(out / pages[series], _cell_page(go, cell, commits))
    for name, group in by_metric.items():
        _write(out / f"metric-{_safe(name)}.html", _metric_page(go, name, group, commits))
    recent_keys = {c.key for c in commits[-recent:]} if recent > 0 else set()
    recent_steps = [(t, s) for t in trends for s in t.steps if t.commits[s.index].key in recent_keys]
    _write(out / "index.html", _index(trends, commits, ordering, recent, recent_steps, pages, by_metric))
    return Built(out, len(commits), len(by_cell), len(trends), sum(len(t.steps) for t in trends), len(recent_steps))


def _cell_page(go: Any, trends: list[Trend], commits: list[Commit]) -> str:
    links = " · ".join(f'<a href="#{esc(t.name)}">{esc(t.name)}</a>' for t in trends)
    parts = [
        f'<p class="note">metrics: {links}. Hover a point for its commit, median, IQR, rows and the '
        "machine's load average; click a legend entry to hide that series.</p>"
    ]
    for i, trend in enumerate(trends):
        rule = "exact change, deterministic metric" if trend.deterministic else "penalised fit of commit medians"
        steps = ", ".join(f"{trend.commits[s.index].short} {s.size:+.1%}" for s in trend.steps) or "none"
        parts.append(
            f'<h2 id="{esc(trend.name)}">{esc(trend.name)}</h2>\n'
            f'<p class="note">change points ({rule}): {esc(steps)}</p>\n'
            + _plot(figures.trend_figure(go, trend, commits), f"plot-{i}")
        )
    return shell(trends[0].label, "\n".join(parts), root="../")


def _metric_page(go: Any, name: str, trends: list[Trend], commits: list[Commit]) -> str:
    note = (
        '<p class="note">Each line is one cell, divided by its value at its first commit. Click a legend '
        "entry to hide a cell, double-click to show only that one.</p>"
    )
    return shell(f"{name} across cells", note + _plot(figures.metric_figure(go, name, trends, commits), "plot-0"))


def _plot(fig: Any, div_id: str) -> str:
    import plotly.io as pio

    config = {"displaylogo": False, "responsive": True}
    return pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=div_id, config=config)


def _index(trends, commits, ordering, recent, recent_steps, pages, by_metric) -> str:
    first, last = commits[0], commits[-1]
    intro = (
        f"<p>{len(commits)} commits, from <code>{esc(first.short)}</code> to <code>{esc(last.short)}</code>, "
        f"ordered by {esc(ordering)}; {len(pages)} cells; metrics: "
        + ", ".join(f'<a href="metric-{_safe(name)}.html">{esc(name)}</a>' for name in sorted(by_metric))
        + ".</p>"
    )
    steps = sorted(recent_steps, key=lambda ts: -abs(ts[1].size) if math.isfinite(ts[1].size) else -math.inf)
    position = {c.key: i for i, c in enumerate(commits)}
    step_rows = [_step_row(t, s, pages, position) for t, s in steps]
    heading = f"<h2>Largest steps in the last {recent} commits</h2>"
    headers = ("size", "commit", "metric", "cell", "before → after", "way", "rule", "load before → after")
    steps_html = table(headers, step_rows, "steps")
    if not step_rows:
        steps_html = '<p class="note">No change point in these commits.</p>'
    cell_rows = [_cell_row(series, [t for t in trends if t.series == series], page) for series, page in pages.items()]
    cells_html = table(("cell", "commits", "metrics", "change points"), cell_rows, "cells")
    commit_rows = [_commit_row(i, c) for i, c in enumerate(commits)]
    commits_html = table(("#", "commit", "subject", "commit time", "first measured"), commit_rows, "commits")
    body = f"{intro}\n{heading}\n{steps_html}\n<h2>Cells</h2>\n{cells_html}\n<h2>Commits</h2>\n{commits_html}"
    return shell("gam-bench history", body)


def _step_row(trend: Trend, step, pages, position) -> list[str]:
    worse = trend.regression(step)
    scale, unit = figures.unit(trend.column)
    commit = trend.commits[step.index]
    return [
        num(f"{step.size:+.1%}", step.size if math.isfinite(step.size) else math.copysign(1e308, step.size)),
        f'<td data-sort="{position[commit.key]}"><code>{esc(commit.short)}</code> {esc(commit.subject[:70])}</td>',
        esc(trend.name),
        f'<a href="{pages[trend.series]}#{esc(trend.name)}">{esc(trend.label)}</a>',
        num(f"{step.before * scale:.4g} → {step.after * scale:.4g} {unit}".strip()),
        f'<span class="{"worse" if worse else "better"}">{"worse" if worse else "better"}</span>',
        "exact" if trend.deterministic else "timed",
        num(_loads(trend, step)),
    ]


def _loads(trend: Trend, step) -> str:
    """The machine's mean load average over the commits just before and from the step (a timed step
    that coincides with a change of load is suspect)."""
    before = trend.load[max(0, step.index - 3) : step.index]
    after = trend.load[step.index : step.index + 3]
    if np.isnan(before).all() or np.isnan(after).all():
        return "unknown"
    return f"{np.nanmean(before):.1f} → {np.nanmean(after):.1f}"


def _cell_row(series: str, trends: list[Trend], page: str) -> list[str]:
    points = max(len(t.commits) for t in trends)
    steps = sum(len(t.steps) for t in trends)
    metrics = ", ".join(t.name for t in trends)
    return [
        f'<a href="{page}">{esc(trends[0].label)}</a>',
        num(str(points), points),
        esc(metrics),
        num(str(steps), steps),
    ]


def _commit_row(i: int, commit: Commit) -> list[str]:
    def when(t):
        return t.strftime("%Y-%m-%d %H:%M") if t is not None else "unknown"

    return [num(str(i + 1), i), f"<code>{esc(commit.short)}</code>", esc(commit.subject), when(commit.time),
            when(commit.measured)]  # fmt: skip


def _slug(series: str) -> str:
    return hashlib.sha1(series.encode()).hexdigest()[:16]


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)


def _write(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
