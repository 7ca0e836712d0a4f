"""The instruction-counting gate on this machine: A/A flags, injected regressions caught, run time,
and how well instruction ratios predict time ratios.

  PYTHONPATH=$PWD:$PWD/benchmarks python benchmarks/gate_counts.py aa [--pairs 2] [--suite suites/ci.yaml]
      A/A: the suite run twice back to back (`gam-bench run`, instruction counting as the suite
      asks), then compared with the suite's `regression:` settings. Prints each pair's summary,
      every flagged verdict, the largest instruction difference between the two runs, and each
      run's wall time (a gated `check --against --rounds 1` is two such runs plus the compare).
  PYTHONPATH=$PWD:$PWD/benchmarks python benchmarks/gate_counts.py detect --ops 0 e3 p1 p4 [--tries 2] [--counts-only]
      Injected regressions: `gam-probe` (benchmarks/gate_probe_models.py, GAM with extra ops
      per step: `pK` K projections, `eK` K element-wise multiply-adds, a plain K = `pK`; the
      first is the base) at one shape, one sweep per try whose cells are the base and each
      variant (counted in one counting pass of fresh valgrind workers, timed side by side in
      the same timing passes); each regressed cell judged against the base cell by the gate's
      own verdicts (the suite's settings, ci.yaml's by default). Prints per variant: the
      measured share of the step in instructions and in time (control-scaled), and in how many
      tries the count caught it. `--counts-only`: one timing pass of one repeat (the time
      verdict is not judged), so a try is the counting pass and the count's verdict.
      `--copies N`: N copies of every variant in each sweep (a config field that does nothing
      tells them apart), each built, warmed up and counted anew; copy i judged against base copy i.
  PYTHONPATH=$PWD:$PWD/benchmarks python benchmarks/gate_counts.py predict DIR [DIR ...] [--cpu-times FILE ...]
      From stored runs: across every pair of ok counted cells of one run (models, lengths, modes,
      probe variants), log(instruction ratio) against log(time ratio): Pearson r, the spread of
      time ratio / instruction ratio, and the pairs where they disagree most. The time is the
      control-scaled median of the run, or with --cpu-times each cell's CPU ms a step measured
      by benchmarks/gate_time_ratios.py (matched by what the cell computes).

Results go to a temporary folder (deleted) unless `--keep DIR`. The outcome depends on the
machine and its load (printed): record it in docs/results/gate.md, never assert it in a test.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent


def _load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def _run(suite: Path, out: Path) -> float:
    from gam_bench.runner import run_suite

    start = time.perf_counter()
    run_suite(suite, out=out, fresh=True, progress=True, report=False)
    return time.perf_counter() - start


def _settings(suite: Path):
    from gam_bench.analysis.compare_settings import RegressionSettings

    body = yaml.safe_load(suite.read_text())
    return RegressionSettings.model_validate(body.get("regression") or {})


def aa(root: Path, suite: Path, pairs: int) -> None:
    from gam_bench import store
    from gam_bench.analysis.compare import compare_paths
    from gam_bench.analysis.compare_render import summary_line

    settings = _settings(suite)
    flagged = total = 0
    for i in range(pairs):
        a, b = root / f"A{i}", root / f"B{i}"
        walls = [_run(suite, a), _run(suite, b)]
        comparison = compare_paths(a, b, settings)
        flags = [c for c in comparison.cells if c.verdict != "unchanged"]
        flagged, total = flagged + len(flags), total + len(comparison.cells)
        rows = [store.load(side).set_index("cell_id") for side in (a, b)]
        diffs = (rows[1]["instructions"] / rows[0]["instructions"] - 1).abs().dropna()
        worst = f"{diffs.max():.4%}" if len(diffs) else "none counted"
        print(
            f"pair {i + 1}: {summary_line(comparison)}; largest instruction difference {worst} "
            f"({len(diffs)} cells); run wall {walls[0]:.0f} s, {walls[1]:.0f} s; load {_load()}",
            flush=True,
        )
        for cell in flags:
            print(f"    {cell.label}: {cell.verdict} ({cell.note})", flush=True)
    print(f"A/A: flagged {flagged} of {total} cell verdicts in {pairs} pairs", flush=True)


PROBE_SUITE = {
    "name": "gate-probe",
    "plugins": ["gate_probe_models"],
    "models": ["gam-probe"],
    "axes": {"seq_len": [128], "batch_size": [2], "d_model": [64]},
    "level": "block",
    "mode": ["forward_backward"],
    "dtype": "float32",
    "device": "cpu",
    "threads": 1,
    "limits": {"timeout_s": 120},
}


def _variant(spec: str) -> dict[str, int]:
    """ "p3" -> 3 projections, "e2" -> 2 element-wise ops, "p1e5" -> both, "3" -> 3 projections."""
    parts = dict(re.findall(r"([pe])(\d+)", spec)) if spec[:1] in ("p", "e") else {"p": spec}
    return {"probe_ops": int(parts.get("p", 0)), "probe_elementwise": int(parts.get("e", 0))}


def _probe_suite(root: Path, suite: Path, variants: list[str], counts_only: bool, copies: int = 1) -> Path:
    """PROBE_SUITE, one model entry per variant (and copy), with the gate suite's measure and regression settings."""
    gate = yaml.safe_load(suite.read_text())
    measure = gate["measure"] if not counts_only else {**gate["measure"], "processes": 1, "warmup": 0, "repeats": 1}
    body = {**PROBE_SUITE, "measure": measure, "regression": gate.get("regression") or {}}
    body["models"] = [
        {"name": "gam-probe", "overrides": {**_variant(spec), "probe_copy": copy}}
        for copy in range(copies)
        for spec in variants
    ]
    path = root / "probe.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def _time_ratio(base, cand) -> float:
    """Candidate / baseline median step time, each relative to its control kernel."""
    return float((cand["time_ms"] / cand["control_ms"]) / (base["time_ms"] / base["control_ms"]))


def _spec_of(row, variants: list[str]) -> tuple[str, int]:
    """(the variant, the copy) a stored row measured."""
    overrides = json.loads(row["config_json"])["overrides"]
    found = {key: overrides.get(key, 0) for key in ("probe_ops", "probe_elementwise")}
    return next(spec for spec in variants if found == _variant(spec)), overrides.get("probe_copy", 0)


def detect(root: Path, suite: Path, variants: list[str], tries: int, counts_only: bool, copies: int = 1) -> None:
    """Each try: one sweep whose cells are the probe's variants (the first is the base), counted in
    one counting pass and timed side by side in the same timing passes; each regressed cell judged
    against the base cell by the gate's own count (and, unless counts_only, time) verdicts. With
    `copies` > 1 each variant is `copies` cells of one sweep (built, warmed up and counted anew in
    the counting workers), each copy judged against the base's copy of the same number."""
    from gam_bench import store
    from gam_bench.analysis.judge import judge_count, judge_time

    settings = _settings(suite)
    results: dict[str, list[tuple[bool, float, float, str]]] = {k: [] for k in variants[1:]}
    for attempt in range(tries):
        folder = root / f"try{attempt}"
        wall = _run(_probe_suite(root, suite, variants, counts_only, copies), folder)
        rows = {_spec_of(r, variants): r for _, r in store.load(folder).iterrows()}
        bases = [rows[(variants[0], copy)]["instructions"] for copy in range(copies)]
        counted = ", ".join(f"{b:,.0f}" for b in bases)
        print(f"try {attempt + 1}: {wall:.0f} s, load {_load()}; base {counted}", flush=True)
        for k, copy in itertools.product(variants[1:], range(copies)):
            base, cand = rows[(variants[0], copy)], rows[(k, copy)]
            threshold = settings.instructions_threshold
            count = judge_count("instructions", "instructions", base["instructions"], cand["instructions"], threshold)
            verdicts = f"instructions {count.verdict if count else 'not counted'} ({cand['instructions']:,.0f})"
            timed = float("nan")
            if not counts_only:
                scale = base["control_ms"] / cand["control_ms"]
                units = (np.asarray(base["process_medians_ms"]), np.asarray(cand["process_medians_ms"]) * scale)
                verdicts += f", time {judge_time(*units, settings, 'process_medians_ms x control').verdict}"
                timed = _time_ratio(base, cand) - 1
            hit = count is not None and count.verdict == "regression"
            results[k].append((hit, count.change if count else float("nan"), timed, verdicts))
            print(f"    {k} (copy {copy}): {verdicts}, {count.change if count else float('nan'):+.3%}", flush=True)
    for k, found in results.items():
        changes = [f[1] for f in found]
        timed = f"{np.median([f[2] for f in found]):+.1%} time (control-scaled, median)"
        print(
            f"{k}: {np.median(changes):+.3%} instructions (from {min(changes):+.3%} to {max(changes):+.3%}), "
            f"{'time not judged (--counts-only)' if counts_only else timed}; "
            f"caught by instructions in {sum(f[0] for f in found)} "
            f"of {len(found)}",
            flush=True,
        )


def _pairs(df, cpu: dict[str, float] | None = None) -> list[tuple[float, float, str, str]]:
    """(log instruction ratio, log time ratio, cell a, cell b) for every pair of ok counted cells of
    one run; the time is the control-scaled median, or the CPU ms of `cpu` (by cell key) when given."""
    from gate_time_ratios import cell_key

    ok = df[(df["status"] == "ok") & df["instructions"].notna()]
    out = []
    for (_, a), (_, b) in itertools.combinations(ok.iterrows(), 2):
        if cpu is None:
            ratio = _time_ratio(a, b)
        else:
            ka, kb = cell_key(a["config_json"]), cell_key(b["config_json"])
            if ka not in cpu or kb not in cpu:
                continue
            ratio = cpu[kb] / cpu[ka]
        names = [f"{r['model']} {r['mode']} T={r['seq_len']} {_overrides(r)}".strip() for r in (a, b)]
        out.append((math.log(b["instructions"] / a["instructions"]), math.log(ratio), *names))
    return out


def _overrides(row) -> str:
    found = json.loads(row["config_json"])["overrides"]
    return " ".join(f"{k}={v}" for k, v in found.items() if k.startswith("probe_") and k != "probe_copy" and v)


def predict(folders: list[Path], cpu_times: list[Path]) -> None:
    """How well instruction ratios predict time ratios across the pairs of counted cells."""
    from gam_bench import store

    cpu = None
    if cpu_times:
        cpu = {}
        for path in cpu_times:
            for line in path.read_text().splitlines():
                record = json.loads(line)
                cpu[record["key"]] = record["cpu_ms"]
    points = []
    for folder in folders:
        for run in sorted({p.parent for p in folder.rglob("part-*.parquet")}):
            points += _pairs(store.load(run), cpu)
    if len(points) < 3:
        print("predict: fewer than 3 pairs of counted cells")
        return
    x, y = np.array([p[:2] for p in points]).T
    r = float(np.corrcoef(x, y)[0, 1])
    miss = np.exp(y - x)  # time ratio / instruction ratio
    print(
        f"predict: {len(points)} pairs of cells; Pearson r of log ratios {r:.3f}; time ratio / instruction ratio "
        f"median {np.median(miss):.2f}, from {miss.min():.2f} to {miss.max():.2f}",
        flush=True,
    )
    for (ix, iy, a, b), m in sorted(zip(points, miss), key=lambda item: -abs(math.log(item[1])))[:8]:
        print(f"    {b} / {a}: instructions x{math.exp(ix):.3f}, time x{math.exp(iy):.3f} ({m:.2f})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="keep the results here")
    parser.add_argument("--suite", type=Path, default=REPO / "suites" / "ci.yaml")
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("aa").add_argument("--pairs", type=int, default=2)
    det = sub.add_parser("detect")
    det.add_argument("--ops", nargs="+", default=["0", "e3", "p1", "p4"])
    det.add_argument("--tries", type=int, default=2)
    det.add_argument("--counts-only", action="store_true")
    det.add_argument("--copies", type=int, default=1)
    pred = sub.add_parser("predict")
    pred.add_argument("folders", type=Path, nargs="+")
    pred.add_argument("--cpu-times", type=Path, nargs="*", default=[])
    args = parser.parse_args()
    print(f"start {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, load {_load()}", flush=True)
    if args.what == "predict":
        sys.path.insert(0, str(HERE))
        predict(args.folders, args.cpu_times)
        return
    sys.path.insert(0, str(HERE))
    root = args.keep or Path(tempfile.mkdtemp(prefix="gam-bench-gate-counts-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        if args.what == "aa":
            aa(root, args.suite, args.pairs)
        else:
            detect(root, args.suite, args.ops, args.tries, args.counts_only, args.copies)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"end {time.strftime('%H:%M:%S')}, load {_load()}", flush=True)


if __name__ == "__main__":
    main()
