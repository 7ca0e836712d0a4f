"""`gam-bench models`: every registered model with its family, parameter count at its default
config, the backends that can run on this machine, and a description.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from gam_bench.errors import UserError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list registered models, their sizes and the backends available here",
        description="List every registered model with its parameter count at its default config and the "
        "backends that can run on this machine: the built-in ones, installed plugins (entry point "
        "gam_bench.models), and the plugin modules a suite names (--suite) or you name (--plugin).",
    )
    parser.add_argument("--suite", metavar="FILE", help="also list the models of this suite's `plugins:`")
    parser.add_argument(
        "--plugin", metavar="MODULE", action="append", default=[], help="also import this plugin module (repeatable)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from gam_bench.models import available, get_spec
    from gam_bench.suite import import_plugin, load_suite

    if args.suite:
        load_suite(args.suite)  # imports its plugins (from sys.path or the suite's folder)
    for module in args.plugin:
        try:
            import_plugin(module, os.getcwd())  # looked up on sys.path, then in the current folder
        except Exception as exc:  # noqa: BLE001 - any failure of a user's module is one line
            raise UserError(f"--plugin: cannot import {module!r}: {exc}") from None
    table = Table(title="gam-bench models")
    table.add_column("model", no_wrap=True, style="bold")
    table.add_column("family", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("backends here", no_wrap=True)
    table.add_column("description")
    for name in available():
        spec = get_spec(name)
        backends = ", ".join(spec.backends()) or "-"
        table.add_row(name, spec.family, _params(name), backends, spec.description)
    console = Console()
    if not console.is_terminal:  # piped or captured: one line per model, no wrapping
        console = Console(width=200)
    console.print(table)
    return 0


def _params(name: str) -> str:
    """Parameter count at the default config, e.g. "22.60M"; built on the meta device, so
    nothing is allocated. Shared (tied) tensors count once."""
    import torch

    from gam_bench.models import build

    try:
        with torch.device("meta"):
            model = build(name)
    except Exception:  # a plugin whose init needs real tensors
        model = build(name)
    return f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M"
