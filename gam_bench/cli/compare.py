"""`gam-bench compare BASELINE CANDIDATE`: the regression gate over two stored result sets.

Thresholds: the `--time-threshold` / `--mem-threshold` / `--instructions-threshold` flags, else
`--suite FILE`'s `regression:` section, else the settings the suite that produced CANDIDATE
recorded with it (`suite.json`, written by `gam-bench run`), else the defaults (10% time, 5%
memory, 1% instructions); the output says which.

Exit codes: 0 nothing regressed, 1 a regression or a newly failing cell, 2 bad input
(missing files, nothing in common, different device or thread count without --force, and with
--strict an unreadable or foreign results part).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gam_bench.errors import UserError, first_error
from gam_bench.output_paths import check_file

EXIT_OK, EXIT_REGRESSED = 0, 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare two result sets cell by cell; exit 1 if anything regressed",
        description="Compare time and peak memory per cell of two results files or folders. "
        "Exit 0: no regression; 1: a regression or new failure; 2: bad input.",
    )
    parser.add_argument(
        "baseline",
        type=Path,
        help="results file or folder of the baseline (recorded runs run-1/, run-2/ ... are "
        "compared one by one; a cell fails only if it fails against each)",
    )
    parser.add_argument("candidate", type=Path, help="results file or folder to judge (may hold run-1/ ... too)")
    parser.add_argument(
        "--suite",
        type=Path,
        metavar="FILE",
        help="take the thresholds from this suite file's `regression:` section instead of the ones "
        "recorded with CANDIDATE (flags still win)",
    )
    add_gate_options(parser)
    parser.set_defaults(func=run)


def add_gate_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by `compare` and `check`."""
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write a Markdown report (PR comment)")
    parser.add_argument("--force", action="store_true", help="compare across devices or thread counts anyway")
    add_strict_option(parser)
    parser.add_argument(
        "--time-threshold",
        type=float,
        metavar="FRACTION",
        help="minimum relative slowdown of the median time to flag (default 0.10)",
    )
    parser.add_argument(
        "--mem-threshold",
        type=float,
        metavar="FRACTION",
        help="minimum relative growth of peak memory to flag (default 0.05)",
    )
    parser.add_argument(
        "--instructions-threshold",
        type=float,
        metavar="FRACTION",
        help="minimum relative growth of the instructions per step to flag (default 0.01; deterministic, no test)",
    )


def add_strict_option(parser: argparse.ArgumentParser) -> None:
    """--strict, shared by every subcommand that loads results."""
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse (exit 2) a results folder holding an unreadable or foreign Parquet part "
        "(default: skip it with a warning)",
    )


def gate_settings(args: argparse.Namespace, base=None):
    """RegressionSettings: command-line flags over `base` (a suite's section) over defaults."""
    from pydantic import ValidationError

    from gam_bench.analysis.compare_settings import RegressionSettings

    base = base or RegressionSettings()
    try:
        return base.with_overrides(
            time_threshold=args.time_threshold,
            mem_threshold=args.mem_threshold,
            instructions_threshold=getattr(args, "instructions_threshold", None),
        )
    except ValidationError as exc:
        loc, message = first_error(exc)
        raise UserError(f"--{str(loc[0]).replace('_', '-')}: {message}") from None


def report(comparison, markdown: Path | None) -> int:
    """Print the table, write the Markdown if asked, and return the gate's exit code."""
    from gam_bench.analysis.compare_render import render_markdown, render_terminal

    render_terminal(comparison)
    if markdown is not None:
        try:
            markdown.parent.mkdir(parents=True, exist_ok=True)
            markdown.write_text(render_markdown(comparison))
        except OSError as exc:
            raise UserError(f"{markdown}: cannot write the Markdown report ({exc.strerror or exc})") from None
        print(f"Markdown report: {markdown}")
    return EXIT_REGRESSED if comparison.failed else EXIT_OK


def suite_settings(suite, candidate):
    """The `regression:` section of a loaded suite, for the device the candidate ran on (or None)."""
    devices = candidate["device"].dropna()
    device = str(devices.iloc[0]) if len(devices) else "cpu"
    return getattr(suite.for_device(device), "regression", None)


def settings_source(args: argparse.Namespace, source: str) -> str:
    """Where the thresholds came from, naming the flags that override it."""
    pairs = (
        ("--time-threshold", args.time_threshold),
        ("--mem-threshold", args.mem_threshold),
        ("--instructions-threshold", getattr(args, "instructions_threshold", None)),
    )
    given = [flag for flag, value in pairs if value is not None]
    return f"{', '.join(given)} over {source}" if given else source


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from gam_bench import baselines, store
    from gam_bench.analysis.compare import compare_paths, recorded_settings
    from gam_bench.suite import load_suite

    check_file(args.markdown, "--markdown")
    if args.suite is not None:
        candidate = store.load(baselines.recorded_runs(args.candidate)[0], strict=args.strict)
        base = suite_settings(load_suite(args.suite), candidate)
        source = f"suite file {args.suite}" if base else f"defaults: {args.suite} has no regression: section"
    else:
        base, source = recorded_settings(args.candidate, strict=args.strict)
    settings = gate_settings(args, base)
    comparison = compare_paths(args.baseline, args.candidate, settings, force=args.force, strict=args.strict)
    return report(dataclasses.replace(comparison, settings_source=settings_source(args, source)), args.markdown)
