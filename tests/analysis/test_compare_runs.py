"""The regression gate over several recorded runs, on injected samples (deterministic).

The machine-noise model is the one measured here (README, gate section): within a run a cell's
repeats spread by ~2%, and each run (worker process) puts a cell at one of two speed levels
~30% apart. Real wall-clock A/A and detection runs are recorded benchmarks:
benchmarks/test_gate_runs.py. The last test runs real sweeps, judged on quantities that
noise cannot move (64 MiB more held, a deliberate failure).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import perf_models  # noqa: E402
from compare_rows import row  # noqa: E402

from gam_bench import store  # noqa: E402
from gam_bench.analysis.compare import compare_paths  # noqa: E402
from gam_bench.analysis.verdicts import (  # noqa: E402
    NEW_FAILURE,
    NOT_CONFIRMED,
    ONLY_BASELINE,
    ONLY_CANDIDATE,
    REGRESSION,
    UNCHANGED,
)
from gam_bench.cli.main import main  # noqa: E402

SUITE = HERE / "perf_suite.yaml"
LENGTHS = (64, 128, 256, 512)
MIB = 2**20
SLOW_LEVEL = 1.3  # the second per-process speed level


def run_rows(rng: np.random.Generator, work: float = 1.0, tensor_mib: float = 8.0, levels: bool = True) -> list:
    """One recorded run: per cell a speed level (per process), 12 repeats with 2% noise, and an RSS
    peak that moves ±30% run to run while the counted tensor bytes do not."""
    rows = []
    for n in LENGTHS:
        level = rng.choice([1.0, SLOW_LEVEL]) if levels else 1.0
        times = list(0.1 * n * work * level * (1 + 0.02 * rng.standard_normal(12)))
        rss = int(100 * MIB * (1 + 0.3 * rng.uniform(-1, 1)))
        rows.append(row(n, times, mem=rss, peak_tensor_bytes=int(tensor_mib * n * MIB / 64)))
    return rows


def recorded(folder: Path, runs: list[list]) -> Path:
    for i, rows in enumerate(runs, start=1):
        store.append(rows, folder / f"run-{i}")
    return folder


def test_a_a_comparisons_of_five_runs_a_side_pass_despite_two_speed_levels(tmp_path):
    """Two interleaved A/A windows (runs i, i+2, ... against i+1, i+3, ...): single pairs regress
    (a fast baseline run against a slow candidate run), but the all-pairs rule never fails."""
    rng = np.random.default_rng(7)
    runs = [run_rows(rng) for _ in range(11)]
    single_pair_flags = 0
    for i in range(2):
        window = runs[i : i + 10]
        base = recorded(tmp_path / f"aa{i}" / "base", window[0::2])
        cand = recorded(tmp_path / f"aa{i}" / "cand", window[1::2])
        comparison = compare_paths(base, cand)
        assert not comparison.having(REGRESSION, NEW_FAILURE, ONLY_BASELINE, ONLY_CANDIDATE)
        assert "(5 runs)" in comparison.baseline and "(5 runs)" in comparison.candidate
        assert all(cell.memory.verdict == UNCHANGED for cell in comparison.cells)  # tensor bytes: identical
        single_pair_flags += len(comparison.having(NOT_CONFIRMED))
    assert main(["compare", str(base), str(cand)]) == 0
    assert single_pair_flags > 0  # the noise model does make single comparisons fail


def test_a_slowdown_of_1_3_is_a_time_regression_in_all_four_comparisons(tmp_path):
    """x1.3 the work, interleaved base/slow twice, with per-run noise but no level flips: every cell
    is flagged, on time (its memory is unchanged, so memory cannot be what flags it)."""
    rng = np.random.default_rng(3)
    base = recorded(tmp_path / "base", [run_rows(rng, levels=False) for _ in range(2)])
    slow = recorded(tmp_path / "slow", [run_rows(rng, work=1.3, levels=False) for _ in range(2)])
    md = tmp_path / "perf.md"
    assert main(["compare", str(base), str(slow), "--markdown", str(md)]) == 1
    comparison = compare_paths(base, slow)  # the same comparison, as objects
    assert len(comparison.cells) == len(LENGTHS)
    for cell in comparison.cells:
        assert cell.verdict == REGRESSION and cell.note.startswith("time +")
        assert cell.note.endswith("; in all 4 comparisons")
        assert cell.time.verdict == REGRESSION and cell.time.change == pytest.approx(0.3, abs=0.03)
        assert cell.memory.verdict == UNCHANGED and cell.memory.column == "peak_tensor_bytes"
    flagged = [line for line in md.read_text().split("<details>")[0].splitlines() if line.startswith("| gam")]
    assert len(flagged) == len(LENGTHS) and all(":x: regression (time +" in line for line in flagged)
    assert all("; in all 4 comparisons)" in line for line in flagged)


def test_a_1_05_slowdown_within_the_10_percent_threshold_is_not_flagged(tmp_path):
    rng = np.random.default_rng(4)
    base = recorded(tmp_path / "base", [run_rows(rng, levels=False) for _ in range(2)])
    cand = recorded(tmp_path / "cand", [run_rows(rng, work=1.05, levels=False) for _ in range(2)])
    assert not compare_paths(base, cand).having(REGRESSION, NOT_CONFIRMED)


def test_more_tensor_memory_is_flagged_although_rss_noise_is_larger(tmp_path):
    """+30% counted tensor bytes regress in every comparison; the ±30% RSS noise is not judged."""
    rng = np.random.default_rng(5)
    base = recorded(tmp_path / "base", [run_rows(rng) for _ in range(2)])
    cand = recorded(tmp_path / "cand", [run_rows(rng, tensor_mib=8 * 1.3) for _ in range(2)])
    for cell in compare_paths(base, cand, settings=None).cells:
        assert cell.memory.verdict == REGRESSION and cell.memory.change == pytest.approx(0.3, abs=1e-6)
        assert cell.memory.column == "peak_tensor_bytes"


@pytest.mark.slow
def test_memory_regression_and_new_failure_fail_check(tmp_path, monkeypatch, capsys):
    """`gam-bench check` against a recorded baseline, real sweeps: every cell now holds 64 MiB
    more, and the seq_len 512 cells fail. Both are flagged; check reruns the model and still
    fails (exit 1)."""
    baseline = tmp_path / "baseline"
    assert main(["check", str(SUITE), "--baseline", str(baseline), "--update", "--runs", "1"]) == 0
    monkeypatch.setenv(perf_models.EXTRA_MB_ENV, "64")
    monkeypatch.setenv(perf_models.FAIL_ENV, "512")
    capsys.readouterr()
    assert main(["check", str(SUITE), "--baseline", str(baseline), "--out", str(tmp_path / "cand")]) == 1
    assert "confirming: rerun 1 of perf-block" in capsys.readouterr().out
    comparison = compare_paths(baseline, tmp_path / "cand")
    short = [cell for cell in comparison.cells if "T=128" in cell.label]
    long = [cell for cell in comparison.cells if "T=512" in cell.label]
    assert len(short) == len(long) == 2
    for cell in short:
        assert cell.memory.verdict == REGRESSION and cell.verdict == REGRESSION
        assert cell.memory.candidate - cell.memory.baseline >= 60 * 2**20
    for cell in long:
        assert cell.verdict == NEW_FAILURE and "deliberate failure" in cell.note
