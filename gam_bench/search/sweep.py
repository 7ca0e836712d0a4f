"""The runner's side of a search: probe cells, resume from stored rows, progress lines and the
dry-run table.

The runner (gam_bench.runner.runner) hands over its planned cells, one per model setting at
`search.start` (the suite's seq_len axis is that one length), and two functions: `resolve`
(pre-flight a probe cell at a new length: its model config depends on it) and `run_probe`
(run one cell in a fresh worker and store its row with the `search` column). Nothing here
imports the runner or torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from gam_bench.cell import Cell
from gam_bench.search.bisect import LIMIT_STATUSES, Answer, Probe, answer, next_length, over_budget, search
from gam_bench.search.settings import SearchSettings

REUSED = ("ok", *LIMIT_STATUSES)  # stored outcomes a resumed search takes as they are


@dataclass(frozen=True)
class Found:
    """One model setting's search: its first cell (at `start`) and the answer."""

    template: Cell
    answer: Answer


def stored_outcomes(newest: Any) -> dict[str, Probe]:
    """cell_id -> the stored outcome a resumed search reuses (ok, oom, timeout), from the newest
    attempt of each cell (`store.latest` of the results folder's rows)."""
    out = {}
    for row in newest.itertuples(index=False):
        if row.status in REUSED and row.cell_id not in out:
            seconds = float(row.duration_s) if _number(row.duration_s) else 0.0
            out[row.cell_id] = Probe(int(row.seq_len), str(row.status), seconds, stored=True)
    return out


def _number(value: Any) -> bool:
    """A finite number (a stored duration may be null: NaN or None)."""
    return isinstance(value, (int, float)) and math.isfinite(value)


def run_searches(
    settings: SearchSettings,
    templates: list[Cell],
    *,
    resolve: Callable[[Cell], Cell],
    run_probe: Callable[[Cell], dict[str, Any]],
    stored: dict[str, Probe],
    say: Callable[[str], None],
    label: Callable[[Cell], str],
    searched: Callable[[Cell], None] = lambda cell: None,
) -> list[Found]:
    """Search every template's model setting in turn; `say` gets one line per probe and per answer,
    `searched` each template once its search ended (the progress bar's step)."""
    results = []
    for number, template in enumerate(templates, 1):
        name = f"search {number}/{len(templates)} {label(template)}"

        def probe(seq_len: int, template: Cell = template, name: str = name) -> Probe:
            cell = resolve(template.model_copy(update={"seq_len": seq_len}))
            known = stored.get(cell.cell_id)
            if known is not None:
                say(f"{name}: seq_len {seq_len:>8} {known.status:<8} (stored)")
                return known
            row = run_probe(cell)
            result = Probe(seq_len, str(row["status"]), float(row.get("duration_s") or 0.0))
            say(f"{name}: seq_len {seq_len:>8} {result.status:<8} {result.duration_s:6.1f} s  {_detail(row)}")
            return result

        found = search(settings, probe)
        say(f"{name}: {answer_text(found)}")
        searched(template)
        results.append(Found(template, found))
    return results


def _detail(row: dict[str, Any]) -> str:
    if row["status"] != "ok":
        return (row.get("error") or "")[:90]
    peak = row.get("peak_mem_bytes")
    return f"peak {peak / 2**20:.0f} MiB ({row.get('mem_source') or '?'})" if peak is not None else ""


def answer_text(found: Answer) -> str:
    """An answer in words: "fits 24576, oom at 25600 (converged, 9 probes, 3 stored)"."""
    probes = found.probes
    stored = sum(p.stored for p in probes)
    tail = f"{found.status}, {len(probes)} probes" + (f", {stored} stored" if stored else "")
    fits = f"fits {found.fits}" if found.fits is not None else "nothing fits"
    fails = f", {found.fail_status} at {found.fails}" if found.fails is not None else ""
    return f"{fits}{fails} ({tail})"


def cap_text(cell: Cell) -> str:
    """The memory cap of a cell in words (the worker applies it: measure/memory.py)."""
    limits = cell.limits
    if limits.mem_cap_gb is not None:
        return f"{limits.mem_cap_gb:g} GiB"
    return f"{limits.mem_cap_fraction:g} x {'RAM' if cell.device == 'cpu' else 'device memory'}"


def answers_table(results: list[Found], title: str, label: Callable[[Cell], str]) -> Table:
    """The end-of-run table: one line per model setting."""
    table = Table(title=title)
    for column in ("model setting", "cap", "time limit", "longest ok", "first failure", "probes", "search"):
        table.add_column(column, justify="right" if column in ("longest ok", "probes") else "left")
    for item in results:
        found, cell = item.answer, item.template
        failure = f"{found.fail_status} at {found.fails}" if found.fails is not None else "-"
        table.add_row(
            label(cell),
            cap_text(cell),
            f"{cell.limits.timeout_s:g} s",
            str(found.fits) if found.fits is not None else "none",
            failure,
            str(len(found.probes)),
            found.status,
        )
    return table


def dry_run_table(
    settings: SearchSettings,
    templates: list[Cell],
    resolve: Callable[[Cell], Cell],
    stored: dict[str, Probe],
    label: Callable[[Cell], str],
) -> Table:
    """What a run would do: per model setting, the search's bounds, its limits, and the probes
    already stored with what they answer so far (the next length it would probe)."""
    table = Table(
        title=f"search: from {settings.start} doubling to at most {settings.max_seq_len}, then bisecting to "
        f"{settings.precision:.0%} or {settings.multiple_of} tokens"
        + (f"; at most {settings.budget_s:g} s per model setting" if settings.budget_s else "")
    )
    for column in ("model setting", "cap", "time limit", "stored probes", "so far", "next probe"):
        table.add_column(column)
    for cell in templates:
        known = _known_probes(settings, cell, resolve, stored)
        found = answer(settings, known)
        upcoming = _next(settings, known)
        table.add_row(
            label(cell),
            cap_text(cell),
            f"{cell.limits.timeout_s:g} s",
            " ".join(f"{p.seq_len}:{p.status}" for p in known) or "-",
            answer_text(found) if known else "-",
            str(upcoming) if upcoming is not None else "done",
        )
    return table


def _known_probes(
    settings: SearchSettings, cell: Cell, resolve: Callable[[Cell], Cell], stored: dict[str, Probe]
) -> list[Probe]:
    """The probes a run would find stored, in the order the search would ask for them."""
    known: list[Probe] = []
    while True:
        length = next_length(settings, known)
        hit = None if length is None else stored.get(resolve(cell.model_copy(update={"seq_len": length})).cell_id)
        if hit is None:
            return known
        known.append(hit)


def _next(settings: SearchSettings, known: list[Probe]) -> int | None:
    return None if over_budget(settings, known) else next_length(settings, known)
