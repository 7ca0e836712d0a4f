"""The runner's hook for a suite with a `search:` section (gam_bench.search): instead of the
grid's cells, search each model setting's longest length that fits.

`search_suite` gets the planned cells (one per model setting, at `search.start`) and the
sweep's `CellSweep`; each probe is pre-flighted at its length (its model config depends on
it), run in a fresh worker (`CellSweep.run_probe`) and stored with the `search` column. Stored
probes (ok, oom, timeout) are reused unless `fresh`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from gam_bench.cell import Cell
from gam_bench.runner.progress import SweepProgress, cell_label
from gam_bench.suite import SuiteConfig


def search_suite(
    config: SuiteConfig, source: str, cells: list[Cell], runner: Any, fresh: bool, console: Console, progress: bool
) -> None:
    """Search the longest length that fits for each of the planned cells' model settings
    (gam_bench.search): every probe a cell in a fresh worker, its row stored; stored probes reused."""
    from gam_bench.search import sweep

    settings = config.search
    stored = _stored(runner.folder, fresh)
    resolve = _resolver(config, source)

    with SweepProgress(len(cells), console, enabled=progress) as bar:

        def run_probe(cell: Cell) -> dict[str, Any]:
            bar.start(cell)
            return runner.run_probe(cell, bar, {"search": settings.key()})

        found = sweep.run_searches(
            settings,
            cells,
            resolve=resolve,
            run_probe=run_probe,
            stored=stored,
            say=bar.announce,
            label=search_label,
            searched=bar.passed,
        )
    if progress:
        console.print(
            sweep.answers_table(
                found, f"{config.name}: longest seq_len that fits, results in {runner.folder}", search_label
            )
        )


def search_label(cell: Cell) -> str:
    """A model setting in a few words (the cell's label without its length)."""
    return cell_label(cell).replace(f" T={cell.seq_len}", "")


def _stored(folder: Path, fresh: bool) -> dict[str, Any]:
    """cell_id -> stored probe outcome (none with `fresh`, or before the folder exists)."""
    from gam_bench import store
    from gam_bench.search import sweep

    if fresh or not folder.exists():
        return {}
    return sweep.stored_outcomes(store.latest(store.load(folder)))


def _resolver(config: SuiteConfig, source: str) -> Callable[[Cell], Cell]:
    """Pre-flight of one probe cell at its length (its model config depends on it)."""
    from gam_bench.runner.preflight import preflight, with_peaks

    def resolve(cell: Cell) -> Cell:
        return with_peaks(preflight(config, [cell], source), enabled=config.calibrate)[0]

    return resolve


def dry_run(config: SuiteConfig, source: str, cells: list[Cell], folder: Path, fresh: bool) -> Any:
    """The dry-run table of a search suite (gam_bench.search.sweep.dry_run_table): nothing runs.
    Unlike a run, probes are not calibrated (the dry run measures nothing)."""
    from gam_bench.runner.preflight import preflight
    from gam_bench.search import sweep

    def resolve(cell: Cell) -> Cell:
        return preflight(config, [cell], source)[0]

    return sweep.dry_run_table(config.search, cells, resolve, _stored(folder, fresh), search_label)
