"""`gam-bench schema [-o FILE]`: the suite files' JSON Schema (see gam_bench.suite.json_schema)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gam_bench.output_paths import check_file


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "schema",
        help="write the JSON Schema of suite files (for editors: validation and completion)",
        description="Write the JSON Schema of suite files, generated from the models that validate them. "
        "Name it on a suite's first line, '# yaml-language-server: $schema=PATH', and editors with a YAML "
        "language server validate and complete the file. suites/suite.schema.json is the committed copy.",
    )
    parser.add_argument("-o", "--out", type=Path, metavar="FILE", help="write it to FILE (default: standard output)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gam_bench.atomic import atomic_write
    from gam_bench.suite.json_schema import schema_text

    text = schema_text()
    if args.out is None:
        sys.stdout.write(text)
        return 0
    check_file(args.out, "--out")
    atomic_write(args.out, lambda tmp: tmp.write_text(text))
    print(f"suite schema: {args.out}")
    return 0
