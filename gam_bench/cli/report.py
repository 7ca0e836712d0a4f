"""`gam-bench report RESULTS [-o OUT] [--figures paper|slide] [--html]`: write report.md and its
figures (PNG with SVG beside); print its path. --html also writes report.html (one
self-contained interactive page) and prints its path; without the html extra it is a one-line
error, exit 2.

OUT defaults to reports/<suite name>/. A corrupt or foreign Parquet part is skipped with a
one-line warning naming it; `--strict` refuses instead (exit 2). No torch is imported.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gam_bench.cli.compare import add_strict_option

FIGURE_SIZES = ("paper", "slide")  # gam_bench.report.figure.SIZES (not imported here: matplotlib)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write a Markdown report with plots from stored results",
        description="Read stored results (a Parquet file or a results folder) and write report.md "
        "plus the figures it links (PNG, with SVG beside each): complexity plots, fitted scaling "
        "exponents, the paper's table layouts and, for perplexity suites, learning curves.",
    )
    parser.add_argument(
        "results",
        type=Path,
        nargs="+",
        help="results file or folder, e.g. results/scaling/; several (one suite each) make one report, "
        "e.g. results/recall results/frontier for the quality-cost frontier",
    )
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        default=None,
        metavar="OUT",
        help="output folder (default: reports/<suite name>/)",
    )
    parser.add_argument(
        "--suite",
        metavar="NAME",
        help="report only this suite's rows (needed when RESULTS holds several suites, e.g. results/)",
    )
    parser.add_argument(
        "--figures",
        choices=FIGURE_SIZES,
        default="paper",
        help="size and type of the figures: paper (3.5 in, one column of a paper; default) or slide "
        "(10 in, 16:9); every PNG has an SVG beside it",
    )
    parser.add_argument(
        "--html",
        action="store_true",
        help="also write report.html: one self-contained page (works offline) with interactive plots "
        "and sortable tables; needs the html extra (pip install 'gam-bench[html]')",
    )
    add_strict_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gam_bench.output_paths import check_folder
    from gam_bench.report import write_report

    check_folder(args.out, "--out")
    results = args.results[0] if len(args.results) == 1 else args.results
    path = write_report(results, args.out, strict=args.strict, suite=args.suite, figures=args.figures, html=args.html)
    print(path)
    if args.html:
        from gam_bench.report.html import HTML_NAME

        print(path.parent / HTML_NAME)
    return 0
