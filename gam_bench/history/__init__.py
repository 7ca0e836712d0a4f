"""`gam-bench history`: a static site of how each cell's metrics moved across commits.

    rows.py     results of many commits, loaded from many folders; a cell's key across commits
    commits.py  the commits and their order (git topology, commit time, measurement time)
    steps.py    change points: exact changes of deterministic metrics, a penalised fit of timed ones
    trends.py   one trend per cell and gate metric (median and IQR per commit), with its steps
    figures.py  the plotly figures
    page.py     the HTML shell, tables, sorting
    site.py     writing the pages

plotly and ruptures are optional (`pip install 'gam-bench[html]'`), imported when a site is
built. No torch here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from gam_bench.history.site import Built

EXTRA = "pip install 'gam-bench[html]'"


def require_libraries() -> None:
    """UserError naming the extra when plotly or ruptures is missing."""
    from gam_bench.errors import UserError

    for name in ("plotly", "ruptures"):
        try:
            __import__(name)
        except ImportError:
            raise UserError(f"gam-bench history needs {name}: {EXTRA}") from None


def build_history(
    folders: Sequence[str | os.PathLike[str]],
    out: Path,
    *,
    repo: Path | None = None,
    recent: int = 10,
    min_step: float | None = None,
) -> Built:
    """Load the rows under `folders`, order their commits, find the steps, write the site."""
    from gam_bench.history.commits import order_commits
    from gam_bench.history.rows import load_rows
    from gam_bench.history.site import write_site
    from gam_bench.history.steps import MIN_STEP
    from gam_bench.history.trends import build_trends

    rows = load_rows(folders)  # bad input first: a one-line error names the folder
    require_libraries()
    commits, ordering = order_commits(rows, repo)
    trends = build_trends(rows, commits, MIN_STEP if min_step is None else min_step)
    return write_site(out, trends, commits, ordering, recent)
