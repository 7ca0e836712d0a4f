"""Harness overhead: `gam-bench run` against a plain single-process loop doing the same work.

The grid is the CPU profile of suites/scaling.yaml (its models, threads, dtype, batch and
d_model, read from the file) at its first 6 lengths: 30 cells, with a fixed 1 warmup and 5
timed steps and no FLOP count. Both sides are timed as fresh subprocesses, start-up
included, and interleaved for `--rounds` rounds (gam-bench, loop, gam-bench, loop, ...).
The loop builds each block, warms up and times its steps exactly as the throughput task
does, but in one process with no worker, priming, memory meter, environment or Parquet.

  PYTHONPATH=$PWD python benchmarks/overhead.py [--rounds 2] [--profile] [--repo TREE]

Prints each wall time, the medians and the ratio (target <= 1.2), and the same for the CPU
time the two sides' processes used (user + system, all their processes): on a shared,
loaded machine the wall ratio moves with the load, the CPU ratio much less. `--repo` measures
the gam-bench of another checkout (e.g. the commit before a change) with this script. With --profile it runs
gam-bench once more with cProfile started in every process (parent and worker, through a
sitecustomize on PYTHONPATH) and prints, per process, the cumulative time and call count of
the harness's phases, and the sum of the stored rows' `duration_s` against the wall time.
cProfile slows Python-heavy code, so read its figures as shares and counts; the unprofiled
wall times above are the measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]  # --repo replaces it
N_LENGTHS = 6

_SITECUSTOMIZE = """
import atexit, cProfile, os
_profile = cProfile.Profile()
_profile.enable()
def _dump():
    _profile.disable()
    _profile.dump_stats(os.path.join(os.environ["GAM_BENCH_PROFILE_DIR"], f"prof.{os.getpid()}"))
atexit.register(_dump)
"""

# (label, file suffix, function) of the phases to report; cumulative time includes callees.
PHASES = [
    ("imports (all)", "<frozen importlib._bootstrap>", "_find_and_load"),
    ("cli main", "cli/main.py", "main"),
    ("runner.plan (expand + preflight)", "runner/runner.py", "plan"),
    ("preflight", "runner/preflight.py", "preflight"),
    ("sweep loop", "runner/runner.py", "run"),
    ("executor.run (parent waits)", "runner/executor.py", "run"),
    ("worker spawn + ready", "runner/executor.py", "_ensure_worker"),
    ("store.append (Parquet)", "gam_bench/store.py", "append"),
    ("done_cell_ids (read store)", "gam_bench/store.py", "done_cell_ids"),
    ("summary table", "runner/progress.py", "summary_table"),
    ("worker.prepare", "runner/worker.py", "prepare"),
    ("worker._prime", "runner/worker.py", "_prime"),
    ("worker.run_cell", "runner/worker.py", "run_cell"),
    ("worker._prime_model", "runner/worker.py", "_prime_model"),
    ("environment()", "measure/environment.py", "environment"),
    ("git_sha (git rev-parse)", "measure/environment.py", "git_sha"),
    ("cpu_model", "measure/environment.py", "cpu_model"),
    ("PeakMemory.start", "measure/memory.py", "start"),
    ("_trim_heap", "measure/memory.py", "_trim_heap"),
    ("apply_cap", "measure/memory.py", "apply_cap"),
    ("throughput.run", "tasks/throughput.py", "run"),
    ("build_module", "tasks/throughput.py", "build_module"),
    ("counted step (tensor bytes)", "tasks/throughput.py", "counted_step"),
    ("warm_up", "measure/timing.py", "warm_up"),
    ("time_steps", "measure/timing.py", "time_steps"),
]


def grid_suite(folder: Path) -> Path:
    """Write the 30-cell grid (scaling.yaml's cpu profile, first 6 lengths) as a suite file."""
    scaling = yaml.safe_load((REPO / "suites" / "scaling.yaml").read_text())
    cpu = scaling["profiles"]["cpu"]
    suite = {
        "name": "overhead-grid",
        "models": cpu["models"],
        "axes": {**scaling["axes"], **cpu["axes"], "seq_len": cpu["axes"]["seq_len"][:N_LENGTHS]},
        "level": scaling["level"],
        "mode": scaling["mode"],
        "dtype": cpu["dtype"],
        "device": "cpu",
        "threads": cpu["threads"],
        "measure": {"warmup": 1, "repeats": 5, "min_run_time_s": 0.0, "max_repeats": 5, "flops": False},
        "limits": {**scaling["limits"], **cpu["limits"]},
    }
    path = folder / "overhead-grid.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def plain_loop(suite_path: Path) -> None:
    """The same builds, warmups and timed steps in this one process."""
    import torch

    from gam_bench.models import registry

    suite = yaml.safe_load(suite_path.read_text())
    torch.set_num_threads(suite["threads"])
    axes, measure = suite["axes"], suite["measure"]
    for entry in suite["models"]:
        name, overrides = (entry, {}) if isinstance(entry, str) else (entry["name"], entry.get("overrides", {}))
        for T in axes["seq_len"]:
            torch.manual_seed(0)
            fields = {"d_model": axes["d_model"], "dropout": axes["dropout"], "max_seq_len": T, **overrides}
            block = registry.build_block(name, **fields).train()
            x = torch.randn(axes["batch_size"], T, axes["d_model"], requires_grad=True)  # (B, T, D)

            def step(block=block, x=x) -> None:
                block.zero_grad(set_to_none=True)
                x.grad = None
                block(x).float().mean().backward()  # (B, T, D) -> scalar

            for _ in range(measure["warmup"]):
                step()
            for _ in range(measure["repeats"]):
                t0 = time.perf_counter()
                step()
                _ = time.perf_counter() - t0


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), **(extra or {})}


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # every waited-for descendant
    return usage.ru_utime + usage.ru_stime


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall s, CPU s of the command and its processes)."""
    cpu0, t0 = _children_cpu_s(), time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0, _children_cpu_s() - cpu0


def run_gam_bench(suite: Path, out: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    cmd = [sys.executable, "-m", "gam_bench.cli.main", "run", str(suite), "--out", str(out)]
    cmd += ["--fresh", "--no-report", "--no-progress"]
    return _timed(cmd, env or _env())


def run_loop(suite: Path) -> tuple[float, float]:
    return _timed([sys.executable, __file__, "--loop", str(suite)], _env())


def profile(suite: Path, tmp: Path) -> None:
    """Run gam-bench once with cProfile in every process; print the phases per process."""
    prof_dir, site = tmp / "prof", tmp / "site"
    prof_dir.mkdir()
    site.mkdir()
    (site / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    env = _env({"PYTHONPATH": f"{site}:{REPO}", "GAM_BENCH_PROFILE_DIR": str(prof_dir)})
    out = tmp / "profiled-results"
    wall, _cpu = run_gam_bench(suite, out, env)
    print(f"\nprofiled gam-bench run: {wall:.1f} s wall")
    for path in sorted(prof_dir.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            stats = pstats.Stats(str(path))
        except (EOFError, ValueError, TypeError):  # a process killed before its atexit dump finished
            print(f"\n{path.name}: no complete profile (the process was killed)")
            continue
        total = max(ct for _, _, _, ct, _ in stats.stats.values())
        print(f"\n{path.name}: {total:.2f} s profiled (cumulative of the outermost frame)")
        for label, suffix, func in PHASES:
            hits = [
                (nc, ct) for (f, _, fn), (_, nc, _, ct, _) in stats.stats.items() if f.endswith(suffix) and fn == func
            ]
            if hits:
                calls, cum = sum(h[0] for h in hits), sum(h[1] for h in hits)
                print(f"  {label:34} {calls:6d} calls {cum:8.3f} s  {cum / max(calls, 1) * 1e3:8.2f} ms/call")
    _print_cell_durations(out, wall)


def _print_cell_durations(out: Path, wall: float) -> None:
    from gam_bench import store

    df = store.load(out)
    print(f"\nrows {len(df)}: sum of duration_s {df['duration_s'].sum():.2f} s of {wall:.2f} s wall")
    per_model = df.groupby("model")["duration_s"].sum().round(2).to_dict()
    print("  per model:", json.dumps(per_model))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="also profile one gam-bench run")
    parser.add_argument("--repo", type=Path, help="the checkout whose gam-bench is measured (default: this one)")
    parser.add_argument("--loop", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    global REPO
    REPO = (args.repo or REPO).resolve()
    if args.loop:
        plain_loop(args.loop)
        return
    with tempfile.TemporaryDirectory(prefix="gam-bench-overhead-") as name:
        tmp = Path(name)
        suite = grid_suite(tmp)
        print(f"gam-bench of {REPO}; load before:", os.getloadavg())
        bench, loop = [], []
        for i in range(args.rounds):
            bench.append(run_gam_bench(suite, tmp / f"results-{i}"))
            loop.append(run_loop(suite))
            (bw, bc), (lw, lc) = bench[-1], loop[-1]
            print(
                f"round {i}: gam-bench {bw:.1f} s ({bc:.1f} CPU s), loop {lw:.1f} s ({lc:.1f} CPU s), "
                f"load {os.getloadavg()[0]:.2f}"
            )
        for what, k in (("wall", 0), ("CPU", 1)):
            b, lo = statistics.median(r[k] for r in bench), statistics.median(r[k] for r in loop)
            print(f"median {what}: gam-bench {b:.1f} s, loop {lo:.1f} s, ratio {b / lo:.2f} (target <= 1.2)")
        print("load after:", os.getloadavg())
        if args.profile:
            profile(suite, tmp)


if __name__ == "__main__":
    main()
