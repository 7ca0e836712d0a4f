"""Compare two result sets cell by cell: the entry points behind `gam-bench compare` and `check`.

What is judged is the task's: the rows of every task with gate metrics are compared, each on
its task's metrics (`Task.gate_metrics`: throughput's are the counts, memory and time
described below; a task's own count is judged by its change, analysis.judge.judge_count).

The steps live in their own modules: `matching` pairs the cells and checks the environments,
`judge` reaches each metric's verdict, `runs` combines several recorded runs, `verdicts` holds
the result types. Memory is judged on `peak_tensor_bytes` (live tensor storage, deterministic)
where both rows have it, else on `peak_mem_bytes`; each result names the column it used. Time
is judged relative to the control kernel (`control_ms`) where both rows have it and the
settings' `control` is on: the candidate's samples are scaled by baseline / candidate control.
Where both rows were measured over several processes (`process_medians_ms`, from
`measure.processes` > 1), the units judged are the per-process medians, not the samples:
samples of one process share that process's level (runner/processes.py), so counting them
as independent would make the rank test far too sure.

No torch here.
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pandas as pd
from pydantic import ValidationError

from gam_bench import baselines, store
from gam_bench.analysis.compare_settings import RegressionSettings
from gam_bench.analysis.judge import combine, is_new_failure, judge_counts, judge_memory, judge_time
from gam_bench.analysis.matching import check_environment, comparable_rows, gated_tasks, match_cells
from gam_bench.analysis.reachability import count_spread_note, fewest_per_side
from gam_bench.analysis.rows import cell_label, memory_column, present
from gam_bench.analysis.runs import confirm, runs_label
from gam_bench.analysis.verdicts import (
    FIXED,
    NEW_FAILURE,
    ONLY_BASELINE,
    ONLY_CANDIDATE,
    STILL_FAILING,
    CellComparison,
    Comparison,
)
from gam_bench.errors import UserError, one_line
from gam_bench.tasks import get_task


def samples(row: pd.Series) -> np.ndarray:
    """The timed repeats of a row (falling back to the median alone), finite values only."""
    values = row.get("time_samples_ms")
    if values is None or (not isinstance(values, (list, np.ndarray))) or len(values) == 0:
        values = [row.get("time_ms")]
    array = np.asarray([np.nan if v is None else v for v in values], dtype=float)
    return array[np.isfinite(array)]


def process_medians(row: pd.Series) -> np.ndarray | None:
    """The row's per-process medians when it was measured over 2 or more processes, else None."""
    values = row.get("process_medians_ms")
    if values is None or not isinstance(values, (list, np.ndarray)) or len(values) < 2:
        return None
    array = np.asarray(values, dtype=float)
    return array[np.isfinite(array)]


def time_units(base: pd.Series, cand: pd.Series) -> tuple[np.ndarray, np.ndarray, str]:
    """What the time verdict judges: both rows' per-process medians where both have them, else
    their samples; and the name of that column."""
    b, c = process_medians(base), process_medians(cand)
    if b is not None and c is not None:
        return b, c, "process_medians_ms"
    return samples(base), samples(cand), "time_samples_ms"


def control_scale(base: pd.Series, cand: pd.Series) -> float | None:
    """baseline control_ms / candidate control_ms when both rows timed the control kernel, else None."""
    b, c = base.get("control_ms"), cand.get("control_ms")
    if not (present(b) and present(c)) or b <= 0 or c <= 0:
        return None
    return float(b) / float(c)


def _status(row: pd.Series) -> str:
    return str(row.get("status") or "error")


def _first_line(text: object) -> str:
    return str(text).strip().splitlines()[0] if isinstance(text, str) and text.strip() else ""


def _sort_key(row: pd.Series) -> tuple:
    """Model, level, mode, dtype as text, then batch size and length as numbers."""
    text = tuple(str(row.get(key) or "") for key in ("model", "level", "mode", "dtype"))
    numbers = tuple(int(row[key]) if present(row.get(key)) else -1 for key in ("batch_size", "seq_len"))
    return text + numbers + (cell_label(row),)


def _identity(row: pd.Series) -> dict:
    return dict(
        label=cell_label(row), cell_id=str(row["cell_id"]), model=str(row.get("model") or ""), sort_key=_sort_key(row)
    )


def compare_cell(base: pd.Series, cand: pd.Series, settings: RegressionSettings, matched_by: str) -> CellComparison:
    """The verdict on one matched pair of rows."""
    b_status, c_status = _status(base), _status(cand)
    common = dict(baseline_status=b_status, candidate_status=c_status, matched_by=matched_by, **_identity(cand))
    if is_new_failure(b_status, c_status):
        note = f"{c_status}: {_first_line(cand.get('error'))}".rstrip(": ")
        return CellComparison(verdict=NEW_FAILURE, note=note, **common)
    if b_status != "ok":
        verdict = FIXED if c_status == "ok" else STILL_FAILING
        return CellComparison(verdict=verdict, note=f"baseline {b_status}", **common)
    metrics = get_task(str(cand.get("task") or "throughput")).gate_metrics  # what the task lets the gate judge
    counts = tuple(judge_counts(base, cand, settings, [m for m in metrics if m.kind == "count"]))  # first
    memory = time = None
    if any(m.kind == "memory" for m in metrics):
        column = memory_column(base, cand)
        memory = judge_memory(base.get(column), cand.get(column), settings, column)
    if settings.time and any(m.kind == "time" for m in metrics):
        time = _judge_time(base, cand, settings)
    verdict, which = combine(*counts, memory, time)
    note = "; ".join(part for part in (which, _uncounted(base, cand), _builds(base, cand)) if part)
    return CellComparison(verdict=verdict, time=time, memory=memory, counts=counts, note=note, **common)


def _judge_time(base: pd.Series, cand: pd.Series, settings: RegressionSettings):
    scale = control_scale(base, cand) if settings.control else None
    base_units, cand_units, column = time_units(base, cand)
    if scale is not None:
        cand_units, column = cand_units * scale, f"{column} x control"
    return judge_time(base_units, cand_units, settings, column)


def _uncounted(base: pd.Series, cand: pd.Series) -> str:
    """Why instructions were not judged where a side asked for them and has none."""
    for side, row in (("baseline", base), ("candidate", cand)):
        reason = row.get("instructions_reason")
        if not present(row.get("instructions")) and isinstance(reason, str) and reason:
            return f"instructions not counted in the {side}: {reason}"
    return ""


def _builds(base: pd.Series, cand: pd.Series) -> str:
    """A note when the two sides counted different kernel builds (`instructions_build`)."""
    if not all(present(row.get("instructions")) for row in (base, cand)):
        return ""
    builds = [row.get("instructions_build") for row in (base, cand)]
    builds = [value if isinstance(value, str) and value else None for value in builds]
    if builds[0] == builds[1]:
        return ""
    return f"instructions counted with another kernel build: baseline {builds[0]}, candidate {builds[1]}"


def _one_side(row: pd.Series, verdict: str) -> CellComparison:
    status = _status(row)
    sides = {"baseline_status": status} if verdict == ONLY_BASELINE else {"candidate_status": status}
    return CellComparison(verdict=verdict, **_identity(row), **sides)


def compare_frames(
    baseline: pd.DataFrame,
    candidate: pd.DataFrame,
    settings: RegressionSettings | None = None,
    *,
    force: bool = False,
    names: tuple[str, str] = ("baseline", "candidate"),
) -> Comparison:
    """Compare two loaded result sets (DataFrames with the store schema)."""
    settings = settings or RegressionSettings()
    base, cand = comparable_rows(baseline), comparable_rows(candidate)
    for name, df in zip(names, (base, cand)):
        if df.empty:
            raise UserError(f"{name}: no results to compare (the gate compares {' and '.join(gated_tasks())} cells)")
    pairs, only_base, only_cand = match_cells(base, cand)
    if not pairs:
        raise UserError(f"{names[0]} and {names[1]}: no cells in common (different suites?)")
    notes = check_environment(pairs, names, force)
    cells = [compare_cell(b, c, settings, how) for b, c, how in pairs]
    cells += [_one_side(row, ONLY_BASELINE) for _, row in only_base.iterrows()]
    cells += [_one_side(row, ONLY_CANDIDATE) for _, row in only_cand.iterrows()]
    cells.sort(key=lambda cell: cell.sort_key)
    notes += _statistics_notes(cells, settings) + _spread_notes(pairs, settings)
    return Comparison(names[0], names[1], settings, cells, notes)


def _statistics_notes(cells: list[CellComparison], settings: RegressionSettings) -> list[str]:
    """A note when the rank test could not reach alpha in some cells (too few units a side)."""
    unreachable = sorted({cell.time.basis for cell in cells if cell.time is not None and cell.time.p_value is None})
    if not unreachable:
        return []
    count = sum(1 for cell in cells if cell.time is not None and cell.time.p_value is None)
    need = fewest_per_side(settings.alpha)
    return [
        f"time in {count} cells judged on the effect size alone ({'; '.join(unreachable)}): the Mann-Whitney U "
        f"test cannot reach alpha = {settings.alpha:g} with so few units; {need} processes (or repeats) a side "
        "are the fewest that can"
    ]


def _spread_notes(pairs: list, settings: RegressionSettings) -> list[str]:
    """A note per cell whose instruction counts varied between steps by half the threshold or more."""
    notes = []
    for base, cand, _ in pairs:
        sides = [row.get("instructions_samples") for row in (base, cand)]
        sides = [list(values) for values in sides if isinstance(values, (list, np.ndarray)) and len(values)]
        note = count_spread_note("instructions", sides, settings.instructions_threshold)
        if note:
            notes.append(f"{cell_label(cand)}: {note}")
    return notes


def compare_to_baseline(
    baseline: str | os.PathLike[str],
    candidate: pd.DataFrame,
    settings: RegressionSettings | None = None,
    *,
    force: bool = False,
    candidate_name: str = "candidate",
    strict: bool = False,
) -> list[Comparison]:
    """One comparison of `candidate` per recorded run of `baseline` (see `baselines.recorded_runs`)."""
    return [
        compare_frames(
            store.load(run, strict=strict), candidate, settings, force=force, names=(str(run), candidate_name)
        )
        for run in baselines.recorded_runs(baseline)
    ]


def compare_paths(
    baseline: str | os.PathLike[str],
    candidate: str | os.PathLike[str],
    settings: RegressionSettings | None = None,
    *,
    force: bool = False,
    strict: bool = False,
) -> Comparison:
    """Compare two results files or folders.

    Either side may hold several recorded runs (`run-1/`, `run-2/`, ...): every candidate run
    is compared with every baseline run, and a cell fails only if it fails in all of them.
    Runs of the two sides interleaved in time (base, head, base, head) cancel slow drifts of
    the machine's speed; this is what .github/workflows/perf.yml does.
    """
    comparisons, candidate_runs = [], baselines.recorded_runs(candidate)
    for run in candidate_runs:
        comparisons += compare_to_baseline(
            baseline, store.load(run, strict=strict), settings, force=force, candidate_name=str(run), strict=strict
        )
    combined = confirm(comparisons, baseline_name=runs_label(baseline, len(baselines.recorded_runs(baseline))))
    return replace(combined, candidate=runs_label(candidate, len(candidate_runs)))


def recorded_settings(path: str | os.PathLike[str], *, strict: bool = False) -> tuple[RegressionSettings | None, str]:
    """The `regression:` settings recorded with the results at `path`, and where they came from.

    `gam-bench run` records the suite's settings in each results folder (`store.write_suite_meta`);
    a folder written before that, or by a suite without a `regression:` section, gives None.
    """
    meta = store.read_suite_meta(baselines.recorded_runs(path)[0], strict=strict)
    if meta is None:
        return None, f"defaults: {path} records no suite settings (written by an older gam-bench)"
    suite = meta.get("suite") or "?"
    if not meta.get("regression"):
        return None, f"defaults: suite {suite!r} has no regression: section"
    try:
        settings = RegressionSettings.model_validate(meta["regression"])
    except ValidationError as exc:
        raise UserError(f"{path}: recorded regression settings are invalid: {one_line(exc)}") from None
    return settings, f"suite {suite!r} (regression: settings recorded with {path})"
