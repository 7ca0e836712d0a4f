"""`gam-bench` entry point: builds the parser from the subcommand modules and runs one.

Each subcommand module defines `register(subparsers)`, which adds its parser and sets
`func=run` (run(args) -> exit code). Subcommand modules import heavy libraries (torch)
inside `run`, never at import time, so `gam-bench --help` and `gam-bench report` stay fast.
A `UserError` anywhere prints one line to stderr and exits 2, with no traceback.

`entry` (the console script, `python -m gam_bench`) exits without the interpreter's teardown
once torch is imported: torch's teardown takes most of a second (measured: docs/results/measured.md),
and by then every result is written (atomically) and every worker closed; only stdout and
stderr are left to flush.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from gam_bench import __version__
from gam_bench.errors import UserError

SUBCOMMANDS = ("run", "models", "env", "report", "compare", "check", "history", "doctor", "calibrate", "schema")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gam-bench",
        description="Long-context scaling benchmarks for sequence models.",
    )
    parser.add_argument("--version", action="version", version=f"gam-bench {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"gam_bench.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"gam-bench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        print(f"gam-bench: {exc}" if str(exc) else "gam-bench: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """Run `main()` and exit with its code: through `os._exit` after flushing stdout and stderr
    when torch was imported (its teardown is slow and nothing is left to clean up: results
    are written, workers closed, temporary folders removed by their context managers), else
    normally."""
    code = main()
    if "torch" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    raise SystemExit(code)


if __name__ == "__main__":
    entry()
