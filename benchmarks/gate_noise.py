"""The regression gate on this machine's real noise: false alarms and the smallest slowdown caught.

  PYTHONPATH=$PWD python benchmarks/gate_noise.py aa [--pairs 5]
      A/A: `gam-bench run suites/ci.yaml` twice, back to back, then `gam-bench compare A B`;
      `--pairs` times. Prints each pair's summary line and the flagged cell verdicts in all
      (target: 0 of 12 per pair).
  PYTHONPATH=$PWD python benchmarks/gate_noise.py detect [--factors 1.3 1.5] [--tries 3]
      The test block of tests/analysis/perf_suite.yaml with suites/ci.yaml's `measure` and
      `regression` settings, swept base, slow, base, slow (the interleaving of
      `check --against --rounds 2`) with the block's work times each factor, then compared
      (a cell fails only in all 4 comparisons). Prints, per try, whether the gate failed and
      how many of the 4 cells it flagged.

Runs take minutes (a ci.yaml run is ~26 s here); the outcome depends on the machine and its
load (printed), so record it in the README rather than asserting it. Results go to a
temporary folder, deleted afterwards (`gate_noise.py --keep DIR aa` keeps them in DIR).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests" / "analysis"


def _load() -> float:
    return os.getloadavg()[0]


def aa(root: Path, pairs: int) -> None:
    from gam_bench.analysis.compare import compare_paths
    from gam_bench.analysis.compare_render import summary_line
    from gam_bench.runner import run_suite

    flagged = total = 0
    for i in range(pairs):
        suite = REPO / "suites" / "ci.yaml"
        a, b = (run_suite(suite, out=root / f"{side}{i}", progress=False, report=False) for side in "AB")
        comparison = compare_paths(a, b)
        flags = [c for c in comparison.cells if c.verdict != "unchanged"]
        flagged, total = flagged + len(flags), total + len(comparison.cells)
        print(f"pair {i + 1}: {summary_line(comparison)}  load {_load():.2f}", flush=True)
        for cell in flags:
            change = f" ({cell.time.change:+.1%} time)" if cell.time else ""
            print(f"    {cell.label}: {cell.verdict} {cell.note}{change}")
    print(f"flagged {flagged} of {total} cell verdicts in {pairs} pairs")


def _detect_suite(root: Path) -> Path:
    """perf_suite.yaml with ci.yaml's measure and regression settings."""
    suite = yaml.safe_load((TESTS / "perf_suite.yaml").read_text())
    ci = yaml.safe_load((REPO / "suites" / "ci.yaml").read_text())
    suite.update(name="perf-gate-ci", measure=ci["measure"], regression=ci["regression"])
    path = root / "perf_ci.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def detect(root: Path, factors: list[str], tries: int) -> None:
    sys.path.insert(0, str(TESTS))
    import perf_models

    from gam_bench.analysis.compare import compare_paths
    from gam_bench.analysis.verdicts import REGRESSION
    from gam_bench.runner import run_suite

    suite = _detect_suite(root)
    for factor in factors:
        for t in range(tries):
            sides = {side: root / f"x{factor}-{t}" / side for side in ("base", "slow")}
            for i in range(2):
                for side, work in (("base", "1"), ("slow", factor)):
                    os.environ[perf_models.WORK_ENV] = work  # spawned workers inherit it
                    out = run_suite(suite, out=root / f"x{factor}-{t}" / f"{side}-{i}", progress=False, report=False)
                    sides[side].mkdir(parents=True, exist_ok=True)
                    (sides[side] / f"run-{i + 1}").symlink_to(out, target_is_directory=True)
            comparison = compare_paths(sides["base"], sides["slow"])
            flagged = len(comparison.having(REGRESSION))
            gate = "failed" if comparison.failed else "passed"
            print(
                f"x{factor} try {t + 1}: gate {gate}, {flagged} of {len(comparison.cells)} cells flagged, "
                f"load {_load():.2f}",
                flush=True,
            )
    os.environ.pop(perf_models.WORK_ENV, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p_aa = sub.add_parser("aa")
    p_aa.add_argument("--pairs", type=int, default=5)
    p_detect = sub.add_parser("detect")
    p_detect.add_argument("--factors", nargs="+", default=["1.3", "1.5"])
    p_detect.add_argument("--tries", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="keep the results here")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="gam-bench-gate-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"load before: {_load():.2f}", flush=True)
    try:
        aa(root, args.pairs) if args.what == "aa" else detect(root, args.factors, args.tries)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
