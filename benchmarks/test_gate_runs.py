"""Recorded benchmark: the regression gate on real, wall-clock sweeps of a tiny suite.

Not part of the test run (tests/ is the pytest testpath; the deterministic gate tests are in
tests/analysis/test_compare_runs.py). These measure how the gate behaves on this machine's
real noise, so their outcome depends on the machine; run them by hand and record the result
in the README's gate section:

    PYTHONPATH=. .venv/bin/python -m pytest -q -p no:cacheprovider benchmarks/test_gate_runs.py

The test block `perf-block` (tests/analysis/perf_models.py, suite perf_suite.yaml) is made
slower through an environment variable that spawned workers inherit, so baseline and candidate
are the same cells (same cell_id) measured with different "code".
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[1] / "tests" / "analysis"
sys.path.insert(0, str(HERE))
import perf_models  # noqa: E402

from gam_bench.analysis.compare import compare_paths  # noqa: E402
from gam_bench.analysis.verdicts import NEW_FAILURE, ONLY_BASELINE, ONLY_CANDIDATE, REGRESSION  # noqa: E402
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
