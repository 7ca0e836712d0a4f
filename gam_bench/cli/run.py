"""`gam-bench run SUITE`: run a suite's cells and store one row per cell (see gam_bench.runner)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from gam_bench.devices import DEVICE_CHOICES
from gam_bench.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run",
        help="run a benchmark suite (YAML) and store the results",
        description="Expand a suite into cells, run each in a worker process and store one row per cell "
        "(Parquet, results/<suite name>/ or --out DIR), then write a report (reports/<suite name>/, or "
        "DIR/report/ with --out). Cells already stored ok are skipped: the same command resumes; --fresh "
        "measures every cell again.",
    )
    p.add_argument("suite", help="suite file, e.g. suites/scaling.yaml")
    p.add_argument("--dry-run", action="store_true", help="print the expanded cells and run nothing")
    p.add_argument(
        "--out", metavar="DIR", help="results folder (default: results/<suite name>/); the report goes to DIR/report/"
    )
    p.add_argument("--device", choices=DEVICE_CHOICES, help="override the suite's device")
    p.add_argument("--only", metavar="MODEL", action="append", help="run only this model (repeatable)")
    p.add_argument("--fresh", action="store_true", help="run every cell again, even those already stored ok")
    p.add_argument(
        "--no-report", action="store_true", help="do not write the report (reports/<suite name>/, or DIR/report/)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar, per-cell lines or summary")
    p.add_argument("--executor", default="local", help="where cells run: local (worker processes here) or ray")
    p.add_argument(
        "--address",
        metavar="ADDR",
        help="ray: cluster to use, auto or ray://host:port (default: a fresh local cluster)",
    )
    p.add_argument("--max-concurrency", metavar="N", type=int, help="ray: run at most N cells at once")
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="perplexity data folder (default: $GAM_BENCH_DATA_DIR, then the suite's data_dir)",
    )
    p.set_defaults(func=run)


def executor_options(args: argparse.Namespace) -> dict:
    """--address / --max-concurrency as executor options (only the ray executor takes them)."""
    options = {"address": args.address, "max_concurrency": args.max_concurrency}
    options = {k: v for k, v in options.items() if v is not None}
    if options and args.executor != "ray":
        flag = "--" + next(iter(options)).replace("_", "-")
        raise UserError(f"{flag}: only used with --executor ray (executor is {args.executor!r})")
    return options


def run(args: argparse.Namespace) -> int:
    from gam_bench.output_paths import check_folder
    from gam_bench.runner import run_suite

    check_folder(args.out, "--out")

    if args.data_dir:  # workers inherit the environment, so they see it too
        if not Path(args.data_dir).is_dir():
            raise UserError(f"--data-dir: {args.data_dir}: no such folder")
        os.environ["GAM_BENCH_DATA_DIR"] = str(Path(args.data_dir).resolve())
    if args.dry_run:
        return _dry_run(args)
    run_suite(
        args.suite,
        out=args.out,
        device=args.device,
        only=args.only,
        fresh=args.fresh,
        executor=args.executor,
        executor_options=executor_options(args),
        progress=not args.no_progress,
        report=not args.no_report,
    )
    return 0


def _dry_run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from gam_bench import store
    from gam_bench.runner.runner import gate_warnings, plan, results_dir

    suite, config, cells = plan(args.suite, args.device, args.only)
    folder = results_dir(suite, args.out)
    gate_warnings(config, Console(stderr=True))  # as a real run says before it starts
    if config.search is not None:
        from gam_bench.runner.search import dry_run

        Console().print(dry_run(config, suite.source, cells, folder, fresh=args.fresh))
        print(f"{len(cells)} searches; nothing run (--dry-run)")
        return 0
    done = set() if args.fresh else store.done_cell_ids(folder)
    table = Table(title=f"{suite.name}: {len(cells)} cells on {cells[0].device} -> {folder}")
    extra = cells[0].task_spec.dry_run_columns()  # header -> the cell's text
    table.add_column("#")
    table.add_column("cell_id", no_wrap=True)
    table.add_column("model", no_wrap=True, min_width=max(len(c.model) for c in cells))
    for column in (
        "level",
        "mode",
        "dtype",
        "B",
        "T",
        *extra,
        "overrides",
        "stored",
    ):
        table.add_column(column, overflow="fold")
    for i, cell in enumerate(cells, 1):
        overrides = " ".join(f"{k}={v}" for k, v in sorted(cell.overrides.items()))
        table.add_row(
            str(i),
            cell.cell_id,
            cell.model,
            cell.level,
            cell.mode,
            cell.dtype,
            str(cell.batch_size),
            str(cell.seq_len),
            *(text(cell) for text in extra.values()),
            overrides,
            "ok" if cell.cell_id in done else "",
        )
    Console().print(table)
    print(f"{len(cells)} cells, {sum(c.cell_id in done for c in cells)} already stored ok; nothing run (--dry-run)")
    return 0
