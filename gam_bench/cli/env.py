"""`gam-bench env`: what would be recorded about this machine with every result row."""

from __future__ import annotations

import argparse

from gam_bench.devices import DEVICE_CHOICES


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "env",
        help="show the device, backends and environment that runs record",
        description="Show what `gam-bench run` would record about this machine with every result row "
        "(device, torch and CUDA versions, CPU, threads, git SHA, ...) and the backends each model can "
        "use here. Runs nothing.",
    )
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="device to describe (default: auto)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from rich.table import Table

    from gam_bench.measure.environment import environment, resolve_device, usable_cores
    from gam_bench.models import registry

    device = resolve_device(args.device)
    torch.set_num_threads(usable_cores())
    env = {"device": device, **environment(device)}
    table = Table(title="gam-bench env: recorded with every row", show_header=False)
    for key, value in env.items():
        table.add_row(key, str(value))
    table.add_row("threads (default)", f"{usable_cores()} (all usable cores; a suite's `threads:` overrides)")
    table.add_row("accelerator available", str(torch.accelerator.is_available()))
    console = Console()
    console.print(table)
    backends = Table(title="models and the backends that can run here")
    backends.add_column("model")
    backends.add_column("family")
    backends.add_column("backends")
    for name in registry.available():
        spec = registry.get_spec(name)
        backends.add_row(name, spec.family, ", ".join(spec.backends()) or "-")
    console.print(backends)
    return 0
