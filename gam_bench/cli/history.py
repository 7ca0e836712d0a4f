"""`gam-bench history DIR... --out SITE`: a static site of each cell's metrics across commits.

DIR: results folders of any number of commits (`gam-bench run --out`, `check --against --out
DIR`'s `DIR/base` and `DIR/head`, baselines); every row names the commit that measured it.
The site: a trend per cell and gate metric (commit on the x-axis, median with its IQR band),
its change points (the commit where a step happened, and its size), and a summary of the
largest recent steps. Exit 0: written; 2: bad input (a missing folder, no rows, rows without a
git revision, plotly or ruptures not installed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gam_bench.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "history",
        help="build a static site of each cell's metrics across commits, with change points",
        description="Build one static HTML site (works offline) from the results of many commits: a trend per "
        "cell and gate metric, the commits where a step happened with its size, and a summary of the "
        "largest recent steps. Needs plotly and ruptures: pip install 'gam-bench[html]'.",
    )
    parser.add_argument("folders", type=Path, nargs="+", metavar="DIR", help="results folders (searched recursively)")
    parser.add_argument("--out", type=Path, required=True, metavar="SITE", help="the site's folder (created)")
    parser.add_argument(
        "--repo",
        type=Path,
        metavar="PATH",
        help="git checkout that orders the commits by topology and names their subjects "
        "(default: the checkout this runs in, when it knows every commit)",
    )
    parser.add_argument(
        "--recent",
        type=int,
        default=10,
        metavar="N",
        help="the summary lists the steps in the newest N commits (default 10)",
    )
    parser.add_argument(
        "--min-step",
        type=float,
        default=None,
        metavar="FRACTION",
        help="timed metrics: the smallest change of level reported, e.g. 0.1 for 10%% (default 0.1); "
        "deterministic counts use their gate threshold",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gam_bench.history import build_history
    from gam_bench.history.commits import check_repo, default_repo

    if args.recent < 1:
        raise UserError(f"--recent: must be 1 or more (got {args.recent})")
    if args.min_step is not None and not 0 < args.min_step < 10:
        raise UserError(f"--min-step: a fraction above 0, e.g. 0.1 for 10% (got {args.min_step})")
    repo = check_repo(args.repo) if args.repo is not None else default_repo(Path.cwd())
    built = build_history(args.folders, args.out, repo=repo, recent=args.recent, min_step=args.min_step)
    print(
        f"history: {built.commits} commits, {built.cells} cells, {built.trends} trends, {built.steps} change points "
        f"({built.recent_steps} in the newest {args.recent} commits) -> {built.out / 'index.html'}"
    )
    return 0
