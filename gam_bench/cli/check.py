"""`gam-bench check SUITE --against REV | --baseline PATH`: run a suite, compare, gate.

`--against REV` (the trustworthy form, what CI uses): measure the suite at git revision REV
(a temporary worktree) and at the working tree on this machine now, interleaved for
`--rounds` rounds (base, head, base, head, ...), then compare every head run with every base
run; a cell fails only if it fails in all of those comparisons. A drift of the machine's
speed hits both sides alike. If REV has no such suite file, nothing is compared (exit 0).

`--baseline PATH` compares with results recorded earlier (possibly on another day): quick,
but a shared machine's speed drifts between then and now, so read it as a smoke test.
When the first comparison fails, the models of the failing cells are run
again (`--reruns`, default 1) and a cell fails the gate only if it fails in every run: a burst
of load on a shared runner slows one run, a real regression slows them all.

Thresholds: the `--time-threshold` / `--mem-threshold` flags, else the suite's `regression:`
section (for the device the run used), else the defaults (10% time, 5% memory).
Exit codes as `gam-bench compare`: 0 pass, 1 regression or new failure, 2 bad input.

Recording or refreshing a baseline: `gam-bench check SUITE --baseline PATH --update` runs the
suite `--runs` times (default 2) into PATH/run-1, PATH/run-2, ... replacing what was recorded
there (nothing is compared). The gate compares with each recorded run, so the baseline's own
run-to-run spread is taken into account.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from gam_bench.baselines import run_folder
from gam_bench.cli.compare import EXIT_OK, add_gate_options, gate_settings, report, settings_source, suite_settings
from gam_bench.errors import UserError
from gam_bench.output_paths import check_file, check_folder


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="run a suite and compare it with a baseline (the CI regression gate)",
        description="Run SUITE at git revision --against REV and at the working tree, interleaved on "
        "this machine, and compare (the CI gate); or run it once and compare with results stored in "
        "--baseline PATH. Exit 0: no regression; 1: a regression or new failure; 2: bad input. "
        "--update records a new baseline in PATH.",
    )
    parser.add_argument("suite", type=Path, help="suite YAML file")
    against = parser.add_mutually_exclusive_group(required=True)
    against.add_argument(
        "--against",
        metavar="REV",
        help="git revision to measure as the baseline, interleaved with the working tree (CI)",
    )
    against.add_argument("--baseline", type=Path, metavar="PATH", help="baseline results folder recorded earlier")
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        metavar="N",
        help="with --against: run base and head N times each, alternating (default 2)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="keep the new results here (default: a temporary folder, deleted afterwards); "
        "with --against: DIR/base/run-N and DIR/head/run-N",
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="record this run as the baseline in PATH (replaces its result files), compare nothing",
    )
    parser.add_argument(
        "--reruns",
        type=int,
        default=1,
        metavar="N",
        help="with --baseline: rerun failing models up to N times; fail only what fails every time (default 1)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=2,
        metavar="N",
        help="with --update: record N runs of the suite (default 2); the gate compares with each",
    )
    add_gate_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gam_bench.suite import load_suite

    suite = load_suite(args.suite)
    gate_settings(args)  # reject bad flags before spending minutes on the run
    _warn_unreachable(args, suite)
    for flag, value, least in (("--reruns", args.reruns, 0), ("--runs", args.runs, 1), ("--rounds", args.rounds, 1)):
        if value < least:
            raise UserError(f"{flag}: must be {least} or more (got {value})")
    if args.update and args.against:
        raise UserError("--update: records into --baseline PATH; it cannot be used with --against")
    if args.against is None and not args.update:
        _require_baseline(args.baseline)
    check_folder(args.out, "--out")
    check_file(args.markdown, "--markdown")
    if args.update:
        check_folder(args.baseline, "--baseline")
    with _results_folder(args.out) as out:
        from gam_bench.runner import run_suite

        if args.against is not None:
            return _check_against(args, suite, out)
        if args.update:
            return _record(args, suite, [run_folder(out, i) for i in range(1, args.runs + 1)])
        run_suite(suite, out=out, fresh=True, report=False)
        return _compare(args, suite, out)


def _warn_unreachable(args: argparse.Namespace, suite) -> None:
    """Before measuring: the gate settings of each device profile that can never fire (the rank
    test's alpha out of reach for its processes or repeats: analysis/reachability.py)."""
    from gam_bench.analysis.reachability import problems

    for name, config in {"": suite.base, **{f" ({device})": c for device, c in suite.profiles.items()}}.items():
        settings = gate_settings(args, config.regression)
        for line in problems(config.measure, settings):
            print(f"warning: {args.suite}{name}: {line}", file=sys.stderr)


def _check_against(args: argparse.Namespace, suite, out: Path) -> int:
    """Base revision and working tree, interleaved; every head run against every base run."""
    from gam_bench import store
    from gam_bench.analysis.compare import compare_paths
    from gam_bench.runner import run_suite
    from gam_bench.runner.revision import run_interleaved

    rounds = [(run_folder(out / "base", i), run_folder(out / "head", i)) for i in range(1, args.rounds + 1)]
    sha = run_interleaved(
        args.suite, args.against, rounds, lambda folder: run_suite(suite, out=folder, fresh=True, report=False)
    )
    if sha is None:
        return _nothing_to_compare(args)
    settings = gate_settings(args, suite_settings(suite, store.load(out / "head", strict=args.strict)))
    comparison = compare_paths(out / "base", out / "head", settings, force=args.force, strict=args.strict)
    runs = f"{args.rounds} run{'s' if args.rounds > 1 else ''}"
    names = dict(baseline=f"{args.against} = {sha[:12]} ({runs})", candidate=f"working tree ({runs})")
    return report(dataclasses.replace(comparison, settings_source=_source(args, suite), **names), args.markdown)


def _nothing_to_compare(args: argparse.Namespace) -> int:
    message = f"no baseline: {args.against} has no {args.suite}; nothing compared"
    print(message)
    if args.markdown is not None:
        try:
            args.markdown.parent.mkdir(parents=True, exist_ok=True)
            args.markdown.write_text(f"## gam-bench performance check\n\n{message}.\n")
        except OSError as exc:
            raise UserError(f"{args.markdown}: cannot write the Markdown report ({exc.strerror or exc})") from None
    return EXIT_OK


def _compare(args: argparse.Namespace, suite, out: Path) -> int:
    """Compare with every baseline run; rerun failing models; fail what fails in every comparison."""
    from gam_bench.analysis.runs import confirm, runs_label
    from gam_bench.analysis.verdicts import FAILING_VERDICTS
    from gam_bench.runner import run_suite

    comparisons = _compare_once(args, suite, out)
    name = runs_label(args.baseline, len(comparisons))
    combined = confirm(comparisons, name)
    for attempt in range(args.reruns):
        if not combined.failed:
            break
        models = sorted({cell.model for cell in combined.having(*FAILING_VERDICTS)})
        print(f"confirming: rerun {attempt + 1} of {', '.join(models)} (cells fail only if they fail every time)")
        run_suite(suite, out=out, only=models, fresh=True, report=False)
        comparisons += _compare_once(args, suite, out)
        combined = confirm(comparisons, name)
    return report(dataclasses.replace(combined, settings_source=_source(args, suite)), args.markdown)


def _compare_once(args: argparse.Namespace, suite, out: Path) -> list:
    """This run (newest attempt of every cell in `out`) against each baseline run."""
    from gam_bench import store
    from gam_bench.analysis.compare import compare_to_baseline

    candidate = store.load(out, strict=args.strict)
    settings = gate_settings(args, suite_settings(suite, candidate))
    name = f"{args.suite} (this run)"
    return compare_to_baseline(
        args.baseline, candidate, settings, force=args.force, candidate_name=name, strict=args.strict
    )


def _source(args: argparse.Namespace, suite) -> str:
    """Where check's thresholds came from: the suite it ran (flags over it)."""
    has_section = any(config.regression for config in (suite.base, *suite.profiles.values()))
    source = f"suite file {args.suite}" if has_section else f"defaults: {args.suite} has no regression: section"
    return settings_source(args, source)


def _require_baseline(path: Path) -> None:
    if not path.exists():
        raise UserError(
            f"--baseline: {path} does not exist; record one with `gam-bench check SUITE --baseline {path} --update`"
        )


@contextlib.contextmanager
def _results_folder(out: Path | None) -> Iterator[Path]:
    if out is not None:
        yield out
        return
    with tempfile.TemporaryDirectory(prefix="gam-bench-check-") as tmp:
        yield Path(tmp)


def _record(args: argparse.Namespace, suite, runs: list[Path]) -> int:
    """Run the suite into each of `runs` and record them as the baseline in --baseline PATH."""
    from gam_bench.baselines import record_baseline
    from gam_bench.runner import run_suite

    for folder in runs:
        run_suite(suite, out=folder, fresh=True, report=False)
    cells = record_baseline(runs, args.baseline)
    print(f"baseline recorded: {len(runs)} run(s) of {cells} cells in {args.baseline}")
    return EXIT_OK
