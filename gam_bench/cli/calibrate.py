"""`gam-bench calibrate`: measure (or show the cached) matmul peak per dtype and copy bandwidth of this machine."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "calibrate",
        help="measure this machine's matmul peak FLOP/s per dtype and bandwidth",
        description="Measure this machine's dense-matmul peak FLOP/s per dtype and its copy bandwidth, or "
        "show the cached result (per device, torch version and thread count). `gam-bench run` does this "
        "once on first use; rows' mfu is flops_per_s over this peak.",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, ... or auto (the accelerator if any)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all usable cores)")
    p.add_argument("--force", action="store_true", help="measure again even if a cached result exists")
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="square matmul sizes (default 512..4096)")
    p.add_argument("--copy-mib", type=float, default=None, help="size of the copied buffer in MiB (default 256)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from gam_bench.errors import UserError
    from gam_bench.measure import calibrate
    from gam_bench.measure.environment import resolve_device, usable_cores

    device = resolve_device(args.device)
    threads = args.threads or usable_cores()
    if threads < 1 or any(n < 1 for n in args.sizes or ()):
        raise UserError(f"calibrate: --threads and --sizes must be positive (got {threads}, {args.sizes})")
    measure = {k: v for k, v in (("sizes", tuple(args.sizes or ())), ("copy_mib", args.copy_mib)) if v}
    entry, measured = calibrate.calibration(device, threads, force=args.force, **measure)
    state = "measured now" if measured else f"cached, measured {entry['measured_at']} (--force to redo)"
    table = Table(title=f"{calibrate.cache_key(device, threads)}: {state}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_column("at size", justify="right")
    for dtype, mm in entry["matmul"].items():
        if mm.get("supported"):
            table.add_row(f"matmul {dtype}", f"{mm['peak_flops_per_s'] / 1e9:,.1f} GFLOP/s", str(mm["size"]))
        else:
            table.add_row(f"matmul {dtype}", "unsupported", mm.get("reason", ""))
    table.add_row("copy bandwidth", f"{entry['bandwidth_bytes_per_s'] / 1e9:,.1f} GB/s", f"{entry['copy_mib']:g} MiB")
    console = Console()
    console.print(table)
    console.print(f"cache: {calibrate.cache_path()}")
    return 0
