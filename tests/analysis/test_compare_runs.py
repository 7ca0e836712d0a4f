"""The regression gate on real sweeps of a tiny suite (tests/analysis/perf_suite.yaml).

The test block `perf-block` (perf_models.py) is made slower, hungrier or failing through
environment variables that spawned workers inherit, so baseline and candidate are the same
cells (same cell_id) measured with different "code". No timing thresholds are asserted
here beyond the gate's own verdicts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import perf_models  # noqa: E402

from gam_bench.analysis.compare import (  # noqa: E402
    NEW_FAILURE,
    ONLY_BASELINE,
    ONLY_CANDIDATE,
    REGRESSION,
    compare_paths,
)
from gam_bench.cli.main import main  # noqa: E402
from gam_bench.runner import run_suite  # noqa: E402

SUITE = HERE / "perf_suite.yaml"
pytestmark = pytest.mark.slow


def sweep(out: Path) -> Path:
    return run_suite(SUITE, out=out, fresh=True, progress=False, report=False)


def recorded(folder: Path, *sweeps: Path) -> Path:
    """A results folder holding the sweeps as its recorded runs (run-1, run-2, ...), as links."""
    folder.mkdir(parents=True)
    for i, target in enumerate(sweeps, start=1):
        (folder / f"run-{i}").symlink_to(target, target_is_directory=True)
    return folder


RUNS_A_SIDE = 5


def test_a_a_comparisons_pass(tmp_path):
    """Fourteen sweeps of unchanged code; five A/A comparisons, each interleaved like the CI
    workflow (baseline sweeps i, i+2, ... against candidate sweeps i+1, i+3, ...): the gate
    never fails.

    Five runs a side because on this VM a cell's time sits at one of two levels ~25-35% apart,
    picked afresh by every worker process (measured: 8 rebuilds in one process stay at one
    level); a cell fails only if it regresses in all 25 pairs. Improvements are not asserted
    against: they do not fail the gate.
    """
    sweeps = [sweep(tmp_path / f"s{i}") for i in range(2 * RUNS_A_SIDE + 4)]
    for i in range(5):
        window = sweeps[i : i + 2 * RUNS_A_SIDE]
        base = recorded(tmp_path / f"aa{i}" / "base", *window[0::2])
        cand = recorded(tmp_path / f"aa{i}" / "cand", *window[1::2])
        assert main(["compare", str(base), str(cand)]) == 0
        comparison = compare_paths(base, cand)
        assert not comparison.having(REGRESSION, NEW_FAILURE, ONLY_BASELINE, ONLY_CANDIDATE)
        assert f"({RUNS_A_SIDE} runs)" in comparison.baseline and f"({RUNS_A_SIDE} runs)" in comparison.candidate


def test_slowed_model_is_flagged(tmp_path, monkeypatch):
    """The same cells with x1.3 the work, measured interleaved (base, slow, base, slow):
    `gam-bench compare` fails (exit 1) on cells that regress in all four comparisons.

    What is flagged varies from run to run: forward+backward keeps the activations of the
    extra matmuls, so memory grows too, and this machine's per-process speed levels (see the
    A/A test) can hide the slowdown of a single cell in one of the four pairings. Measured
    over 6 runs of this test: a time regression was flagged in 4, memory only in 2. The
    README records the measured detection rates by slowdown factor.
    """
    runs: dict[str, list[Path]] = {"base": [], "slow": []}
    for i in range(2):
        for side, work in (("base", "1"), ("slow", "1.3")):
            monkeypatch.setenv(perf_models.WORK_ENV, work)
            runs[side].append(sweep(tmp_path / f"{side}{i}"))
    base, slow = recorded(tmp_path / "base", *runs["base"]), recorded(tmp_path / "slow", *runs["slow"])
    md = tmp_path / "perf.md"
    assert main(["compare", str(base), str(slow), "--markdown", str(md)]) == 1
    changes = md.read_text().split("<details>")[0]
    flagged = [line for line in changes.splitlines() if ":x:" in line and line.startswith("| perf-block")]
    assert flagged and all("in all 4 comparisons)" in line for line in flagged)
    assert all("regression (time" in line or "regression (memory" in line for line in flagged)


def test_memory_regression_and_new_failure_fail_check(tmp_path, monkeypatch, capsys):
    """`gam-bench check` against a recorded baseline: every cell now holds 64 MiB more, and the
    seq_len 512 cells fail. Both are flagged; check reruns the model and still fails (exit 1)."""
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
