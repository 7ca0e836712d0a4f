"""Compare two result sets cell by cell: the statistics behind `gam-bench compare` and `check`.

How a verdict is reached (one small check object answers each question):

- **Matching.** Cells are paired by `cell_id`. Cells left over on both sides are then paired by
  their configuration (`config_json` without the volatile keys in `VOLATILE_KEYS`), so a
  change to the harness that alters cell ids, measurement settings or limits still compares
  like with like. Cells found on one side only are listed, not judged.
- **Status** (`NewFailureCheck`). A cell that was `ok` in the baseline and is `oom`, `error`,
  `timeout` or `skipped` in the candidate is a *new failure*: it fails the gate.
- **Time.** Every timed repeat is kept in `time_samples_ms`. A cell is a time regression when
  both (a) `RankTestCheck`: a two-sided Mann-Whitney U test rejects "same distribution" at
  level `alpha`, and (b) `EffectSizeCheck`: the median moved by at least `time_threshold`
  (a fraction of the baseline median). An improvement is the mirror image. When the samples
  are too few for the rank test ever to reach `alpha` (e.g. 4 against 4), the effect size
  alone decides, and the result says so. A 95% bootstrap interval of the relative change is
  reported alongside; it informs the reader and does not change the verdict.
- **Memory.** Peak memory is one number per cell (there are no repeats to test), so the
  effect size alone decides: a regression is an increase of at least `mem_threshold` and of
  at least `mem_floor_mib` MiB (CPU peak RSS of a small cell moves by ~1 MiB run to run).
- **Several runs** (`confirm`). Either side may hold several recorded runs (`run-1/`, ...)
  and `gam-bench check` reruns failing models: a cell fails the gate only if it fails in every
  baseline-run x candidate-run comparison, because load and clock drift on a shared machine
  move whole runs (measured here: 10-15% between runs), which one run's repeats cannot show.
- **Environment.** Times from different devices or thread counts are not comparable: paired
  cells that differ there raise `UserError` unless `force=True`. A different CPU model or
  device name is only noted.

No torch here.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from gam_bench import store
from gam_bench.analysis.compare_settings import RUN_PREFIX, RegressionSettings
from gam_bench.errors import UserError

REGRESSION = "regression"
IMPROVEMENT = "improvement"
UNCHANGED = "unchanged"
NEW_FAILURE = "new failure"
FIXED = "fixed"
STILL_FAILING = "still failing"
ONLY_BASELINE = "only in baseline"
ONLY_CANDIDATE = "only in candidate"
NOT_CONFIRMED = "not confirmed"  # failed in one of two runs of the candidate only (see `confirm`)

FAILING_VERDICTS = (REGRESSION, NEW_FAILURE)  # these make the gate fail (exit 1)

# Keys of a cell's config that do not change what is measured; dropped when matching by config.
# `device` is dropped too so that a cpu/cuda pair is matched and then refused with a reason.
VOLATILE_KEYS = ("limits", "measure", "device", "threads", "suite", "out", "plugins", "executor")


LOAD_NOTE_GAP = 1.0  # mean 1-minute load average difference that earns a note
_EPS = 1e-12  # so that exactly +10% counts as 10% despite floating point


# --------------------------------------------------------------------------------------------
# Check objects: each answers one question.


@dataclass(frozen=True)
class EffectSizeCheck:
    """Did the metric move by at least `threshold` (fraction of the baseline) and at least
    `floor` (absolute, in the metric's unit), and which way?"""

    threshold: float
    floor: float = 0.0

    def __call__(self, baseline: float, candidate: float) -> str:
        change = candidate / baseline - 1
        if abs(candidate - baseline) < self.floor:
            return UNCHANGED
        if change >= self.threshold - _EPS:
            return REGRESSION
        if change <= -self.threshold + _EPS:
            return IMPROVEMENT
        return UNCHANGED


@dataclass(frozen=True)
class RankTestCheck:
    """Do two sets of samples differ beyond chance (two-sided Mann-Whitney U at level `alpha`)?"""

    alpha: float

    def usable(self, n: int, m: int) -> bool:
        """Can the test reach `alpha` at all with n and m samples? (Smallest p = 2 / C(n+m, n).)"""
        return n >= 1 and m >= 1 and 2 / math.comb(n + m, n) <= self.alpha

    def p_value(self, baseline: Sequence[float], candidate: Sequence[float]) -> float:
        return float(stats.mannwhitneyu(baseline, candidate, alternative="two-sided").pvalue)

    def __call__(self, baseline: Sequence[float], candidate: Sequence[float]) -> bool:
        return self.p_value(baseline, candidate) < self.alpha


@dataclass(frozen=True)
class NewFailureCheck:
    """Did a cell that ran in the baseline stop producing a measurement in the candidate?"""

    def __call__(self, baseline_status: str, candidate_status: str) -> bool:
        return baseline_status == "ok" and candidate_status != "ok"


# --------------------------------------------------------------------------------------------
# Results.


@dataclass(frozen=True)
class MetricResult:
    """One metric of one cell: medians, relative change and the verdict with its basis."""

    metric: str  # "time" (ms) | "memory" (bytes)
    baseline: float
    candidate: float
    change: float  # candidate / baseline - 1
    verdict: str  # REGRESSION | IMPROVEMENT | UNCHANGED
    basis: str  # how the verdict was reached, e.g. "Mann-Whitney U, n=10/10"
    p_value: float | None = None
    ci: tuple[float, float] | None = None  # 95% bootstrap interval of `change`


@dataclass(frozen=True)
class CellComparison:
    """The verdict on one cell, with what it rests on."""

    label: str
    cell_id: str
    verdict: str
    model: str = ""
    baseline_status: str | None = None
    candidate_status: str | None = None
    time: MetricResult | None = None
    memory: MetricResult | None = None
    matched_by: str | None = None  # "cell_id" | "config" | None (one side only)
    note: str = ""
    sort_key: tuple = field(default=(), repr=False, compare=False)


@dataclass(frozen=True)
class Comparison:
    """All cells of a baseline/candidate comparison, plus notes about the environment."""

    baseline: str
    candidate: str
    settings: RegressionSettings
    cells: list[CellComparison]
    notes: list[str] = field(default_factory=list)

    def having(self, *verdicts: str) -> list[CellComparison]:
        return [cell for cell in self.cells if cell.verdict in verdicts]

    @property
    def failed(self) -> bool:
        """True when anything regressed or newly fails: the gate's exit code 1."""
        return bool(self.having(*FAILING_VERDICTS))

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for cell in self.cells:
            counts[cell.verdict] = counts.get(cell.verdict, 0) + 1
        return counts


# --------------------------------------------------------------------------------------------
# Judging metrics.


def _samples(row: pd.Series) -> np.ndarray:
    """The timed repeats of a row (falling back to the median alone), finite values only."""
    samples = row.get("time_samples_ms")
    if samples is None or (not isinstance(samples, (list, np.ndarray))) or len(samples) == 0:
        samples = [row.get("time_ms")]
    values = np.asarray([np.nan if v is None else v for v in samples], dtype=float)
    return values[np.isfinite(values)]


def _change_ci(baseline: np.ndarray, candidate: np.ndarray) -> tuple[float, float] | None:
    """95% percentile-bootstrap interval of median(candidate) / median(baseline) - 1."""
    if len(baseline) < 3 or len(candidate) < 3:
        return None

    def change(b: np.ndarray, c: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.median(c, axis=axis) / np.median(b, axis=axis) - 1

    res = stats.bootstrap(
        (baseline, candidate),
        change,
        n_resamples=1000,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(0),
    )
    low, high = res.confidence_interval
    return (float(low), float(high))


def judge_time(baseline: np.ndarray, candidate: np.ndarray, settings: RegressionSettings) -> MetricResult | None:
    """Time verdict: rank test (when the sample sizes allow) AND minimum effect size."""
    if len(baseline) == 0 or len(candidate) == 0:
        return None
    base, cand = float(np.median(baseline)), float(np.median(candidate))
    if base <= 0:
        return None
    change = cand / base - 1
    direction = EffectSizeCheck(settings.time_threshold)(base, cand)
    rank = RankTestCheck(settings.alpha)
    n, m = len(baseline), len(candidate)
    if rank.usable(n, m):
        p_value = rank.p_value(baseline, candidate)
        verdict = direction if p_value < settings.alpha else UNCHANGED
        basis = f"Mann-Whitney U, n={n}/{m}"
    else:
        p_value, verdict = None, direction
        basis = f"effect size only (n={n}/{m}, too few repeats for the rank test)"
    ci = _change_ci(baseline, candidate)
    return MetricResult("time", base, cand, change, verdict, basis, p_value, ci)


def judge_memory(baseline: float | None, candidate: float | None, settings: RegressionSettings) -> MetricResult | None:
    """Memory verdict: one peak per cell, so the minimum effect size alone decides."""
    if baseline is None or candidate is None or pd.isna(baseline) or pd.isna(candidate) or baseline <= 0:
        return None
    base, cand = float(baseline), float(candidate)
    verdict = EffectSizeCheck(settings.mem_threshold, settings.mem_floor_mib * 2**20)(base, cand)
    return MetricResult("memory", base, cand, cand / base - 1, verdict, "effect size only (1 sample)")


# --------------------------------------------------------------------------------------------
# Cells.


def _status(row: pd.Series) -> str:
    return str(row.get("status") or "error")


def _first_line(text: Any) -> str:
    return str(text).strip().splitlines()[0] if isinstance(text, str) and text.strip() else ""


def _sort_key(row: pd.Series) -> tuple:
    """Model, level, mode, dtype as text, then batch size and length as numbers."""
    text = tuple(str(row.get(key) or "") for key in ("model", "level", "mode", "dtype"))
    numbers = tuple(int(row[key]) if _present(row.get(key)) else -1 for key in ("batch_size", "seq_len"))
    return text + numbers + (cell_label(row),)


def cell_label(row: pd.Series) -> str:
    """Short human name of a cell: `gam block forward_backward float32 B=2 T=256 d_model=64`."""
    parts = [str(row.get(key)) for key in ("model", "level", "mode", "dtype") if _present(row.get(key))]
    for key, short in (("batch_size", "B"), ("seq_len", "T")):
        if _present(row.get(key)):
            parts.append(f"{short}={int(row[key])}")
    overrides = _config(row).get("overrides") or {}
    parts += [f"{key}={value}" for key, value in sorted(overrides.items())]
    return " ".join(parts)


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _config(row: pd.Series) -> dict[str, Any]:
    try:
        config = json.loads(row.get("config_json") or "{}")
    except (TypeError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def compare_cell(base: pd.Series, cand: pd.Series, settings: RegressionSettings, matched_by: str) -> CellComparison:
    """The verdict on one matched pair of rows."""
    b_status, c_status = _status(base), _status(cand)
    common = dict(
        label=cell_label(cand),
        cell_id=str(cand["cell_id"]),
        baseline_status=b_status,
        candidate_status=c_status,
        matched_by=matched_by,
        model=str(cand.get("model") or ""),
        sort_key=_sort_key(cand),
    )
    if NewFailureCheck()(b_status, c_status):
        return CellComparison(
            verdict=NEW_FAILURE, note=f"{c_status}: {_first_line(cand.get('error'))}".rstrip(": "), **common
        )
    if b_status != "ok":
        verdict = FIXED if c_status == "ok" else STILL_FAILING
        return CellComparison(verdict=verdict, note=f"baseline {b_status}", **common)
    time = judge_time(_samples(base), _samples(cand), settings)
    memory = judge_memory(base.get("peak_mem_bytes"), cand.get("peak_mem_bytes"), settings)
    verdict, which = _combine(time, memory)
    return CellComparison(verdict=verdict, time=time, memory=memory, note=which, **common)


def _combine(*results: MetricResult | None) -> tuple[str, str]:
    """Regression wins over improvement wins over unchanged; also names the metrics behind it."""
    measured = [result for result in results if result is not None]
    for verdict in (REGRESSION, IMPROVEMENT):
        metrics = [result.metric for result in measured if result.verdict == verdict]
        if metrics:
            return verdict, ", ".join(metrics)
    return UNCHANGED, "" if measured else "nothing measured"


def _one_side(row: pd.Series, verdict: str) -> CellComparison:
    status = _status(row)
    sides = {"baseline_status": status} if verdict == ONLY_BASELINE else {"candidate_status": status}
    return CellComparison(
        label=cell_label(row),
        cell_id=str(row["cell_id"]),
        verdict=verdict,
        model=str(row.get("model") or ""),
        sort_key=_sort_key(row),
        **sides,
    )


# --------------------------------------------------------------------------------------------
# Matching and environment.


def comparable_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The newest attempt of every throughput cell, one row per cell_id."""
    df = store.latest(df)
    if df.empty:
        return df
    df = df[df["task"].fillna("throughput") == "throughput"]
    return df.drop_duplicates("cell_id", keep="last").reset_index(drop=True)


def config_key(config_json: Any) -> str | None:
    """A cell's config without the volatile keys, as canonical JSON (None if unreadable)."""
    try:
        config = json.loads(config_json)
    except (TypeError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    return json.dumps({k: v for k, v in config.items() if k not in VOLATILE_KEYS}, sort_keys=True)


def match_cells(
    base: pd.DataFrame, cand: pd.DataFrame
) -> tuple[list[tuple[pd.Series, pd.Series, str]], pd.DataFrame, pd.DataFrame]:
    """Pairs (baseline row, candidate row, matched_by), then unmatched baseline and candidate rows."""
    base_by_id = {row["cell_id"]: row for _, row in base.iterrows()}
    pairs = [(base_by_id[row["cell_id"]], row, "cell_id") for _, row in cand.iterrows() if row["cell_id"] in base_by_id]
    matched = {c["cell_id"] for _, c, _ in pairs}
    rest_base = base[~base["cell_id"].isin(matched)]
    rest_cand = cand[~cand["cell_id"].isin(matched)]
    base_keys = _unique_keys(rest_base)
    cand_keys = _unique_keys(rest_cand)
    for key in sorted(set(base_keys) & set(cand_keys)):
        pairs.append((base_keys[key], cand_keys[key], "config"))
    paired_base = {b["cell_id"] for b, _, _ in pairs}
    paired_cand = {c["cell_id"] for _, c, _ in pairs}
    return pairs, base[~base["cell_id"].isin(paired_base)], cand[~cand["cell_id"].isin(paired_cand)]


def _unique_keys(df: pd.DataFrame) -> dict[str, pd.Series]:
    """config key -> row, for keys that occur exactly once (ambiguous keys are not matched)."""
    keys = df["config_json"].map(config_key) if not df.empty else pd.Series(dtype=object)
    unique = keys[keys.notna() & ~keys.duplicated(keep=False)]
    return {key: df.loc[index] for index, key in unique.items()}


def _setup(row: pd.Series) -> str:
    threads = row.get("threads")
    threads_text = int(threads) if _present(threads) else "?"
    return f"device={row.get('device')!r}, threads={threads_text}"


def check_environment(pairs: list[tuple[pd.Series, pd.Series, str]], names: tuple[str, str], force: bool) -> list[str]:
    """Refuse cross-device / cross-thread-count pairs unless forced; return notes for the reader."""
    notes: list[str] = []
    setups = sorted({(_setup(b), _setup(c)) for b, c, _ in pairs if _setup(b) != _setup(c)})
    if setups and not force:
        base_setup, cand_setup = setups[0]
        raise UserError(
            f"{names[0]}: {base_setup} but {names[1]}: {cand_setup}; times from different devices or "
            "thread counts are not comparable (rerun on the same setup, or pass --force)"
        )
    notes += [f"forced: comparing baseline {b} with candidate {c}" for b, c in setups]
    for column in ("cpu_model", "device_name"):
        seen = sorted({(_text(b.get(column)), _text(c.get(column))) for b, c, _ in pairs})
        notes += [f"{column} differs: baseline {b!r}, candidate {c!r}" for b, c in seen if b != c]
    return notes + _load_note(pairs)


def _load_note(pairs: list[tuple[pd.Series, pd.Series, str]]) -> list[str]:
    """A note when one side ran on a clearly busier machine (1-minute load average, per cell)."""
    loads = [[row.get("load_avg_1m") for row in side] for side in zip(*[(b, c) for b, c, _ in pairs])]
    means = [np.mean([v for v in side if _present(v)]) if any(_present(v) for v in side) else None for side in loads]
    if None in means or abs(means[0] - means[1]) < LOAD_NOTE_GAP:
        return []
    return [
        f"load average differs: baseline {means[0]:.1f}, candidate {means[1]:.1f} "
        "(times from a busy machine are suspect)"
    ]


def _text(value: Any) -> str:
    return str(value) if _present(value) else "unknown"


# --------------------------------------------------------------------------------------------
# Entry points.


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
            raise UserError(f"{name}: no throughput results to compare")
    pairs, only_base, only_cand = match_cells(base, cand)
    if not pairs:
        raise UserError(f"{names[0]} and {names[1]}: no cells in common (different suites?)")
    notes = check_environment(pairs, names, force)
    cells = [compare_cell(b, c, settings, how) for b, c, how in pairs]
    cells += [_one_side(row, ONLY_BASELINE) for _, row in only_base.iterrows()]
    cells += [_one_side(row, ONLY_CANDIDATE) for _, row in only_cand.iterrows()]
    cells.sort(key=lambda cell: cell.sort_key)
    return Comparison(names[0], names[1], settings, cells, notes)


def compare_to_baseline(
    baseline: str | os.PathLike[str],
    candidate: pd.DataFrame,
    settings: RegressionSettings | None = None,
    *,
    force: bool = False,
    candidate_name: str = "candidate",
) -> list[Comparison]:
    """One comparison of `candidate` per recorded run of `baseline` (see `recorded_runs`)."""
    return [
        compare_frames(store.load(run), candidate, settings, force=force, names=(str(run), candidate_name))
        for run in recorded_runs(baseline)
    ]


def compare_paths(
    baseline: str | os.PathLike[str],
    candidate: str | os.PathLike[str],
    settings: RegressionSettings | None = None,
    *,
    force: bool = False,
) -> Comparison:
    """Compare two results files or folders (see the module docstring for the rules).

    Either side may hold several recorded runs (`run-1/`, `run-2/`, ...): every candidate run
    is compared with every baseline run, and a cell fails only if it fails in all of them.
    Runs of the two sides interleaved in time (base, head, base, head) cancel slow drifts of
    the machine's speed; this is what .github/workflows/perf.yml does.
    """
    comparisons, candidate_runs = [], recorded_runs(candidate)
    for run in candidate_runs:
        comparisons += compare_to_baseline(baseline, store.load(run), settings, force=force, candidate_name=str(run))
    combined = confirm(comparisons, baseline_name=runs_label(baseline, len(recorded_runs(baseline))))
    return replace(combined, candidate=runs_label(candidate, len(candidate_runs)))


def runs_label(path: str | os.PathLike[str], runs: int) -> str:
    """How a results path is named in a report: with its number of recorded runs if several."""
    return f"{path} ({runs} runs)" if runs > 1 else str(path)


def confirm(comparisons: Sequence[Comparison], baseline_name: str | None = None) -> Comparison:
    """Combine comparisons of the same cells: several baseline runs and/or candidate runs.

    Between-run noise (another tenant on the machine, memory layout, clock) moves a whole run,
    which the rank test on one run's repeats cannot see. So a cell fails the gate only if it
    fails in *every* comparison (failing in some: NOT_CONFIRMED, shown, not failing), and is an
    improvement only if it improves in every one. Numbers are those of the last comparison.
    """
    *_, last = comparisons
    if len(comparisons) == 1:
        return last
    verdicts: dict[str, list[str]] = {}
    for comparison in comparisons:
        for cell in comparison.cells:
            verdicts.setdefault(cell.cell_id, []).append(cell.verdict)
    cells = [_confirmed(cell, verdicts[cell.cell_id], len(comparisons)) for cell in last.cells]
    notes = list(dict.fromkeys(note for comparison in comparisons for note in comparison.notes))
    return replace(last, cells=cells, notes=notes, baseline=baseline_name or last.baseline)


def _confirmed(cell: CellComparison, seen: list[str], total: int) -> CellComparison:
    """The last comparison's cell, its verdict kept only if every comparison agrees."""
    failing = sum(verdict in FAILING_VERDICTS for verdict in seen)
    improved = seen.count(IMPROVEMENT)
    detail = f"{cell.verdict} ({cell.note})" if cell.note else cell.verdict
    if failing == total or (improved == total and cell.verdict == IMPROVEMENT):
        return replace(cell, note=f"{cell.note}; in all {total} comparisons".lstrip("; "))
    if failing:
        return replace(cell, verdict=NOT_CONFIRMED, note=f"failing in {failing} of {total} comparisons; last: {detail}")
    if improved:
        return replace(cell, verdict=UNCHANGED, note=f"improvement in {improved} of {total} comparisons only")
    return cell


def recorded_runs(path: str | os.PathLike[str]) -> list[Path]:
    """The recorded runs in a results folder: its `run-1/`, `run-2/`, ... folders, else the path.

    `gam-bench check --update` records several baseline runs so that the gate sees the
    baseline's own run-to-run spread: a candidate cell must fail against each of them.
    """
    path = Path(path)
    runs = [p for p in path.glob(f"{RUN_PREFIX}*") if p.is_dir() and store.part_files(p)] if path.is_dir() else []
    return sorted(runs, key=lambda p: (len(p.name), p.name)) or [path]
