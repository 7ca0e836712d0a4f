"""Why does a cell's time sit at one of two per-process levels? A controlled experiment.

Spawns fresh processes, each timing the same block step (d=64, batch 1, forward+backward,
1 thread) `--steps` times, interleaved step by step with a control kernel (a fixed matmul
on preallocated buffers: no allocation, no Python-level model code). Per process it records
the median step time, the median control time, and possible causes:

- minor page faults and involuntary context switches per step (getrusage);
- AnonHugePages of the process (transparent huge pages in use);
- the input's and first weight's data_ptr modulo 4 KiB and 2 MiB (alignment / page placement);
- the CPU it ended on, and the oneDNN/ATen CPU capability.

Variants change one factor at a time and are interleaved round-robin, so that the machine's
load drifts over all of them alike:

  base      nothing changed
  pin0/pin1 sched_setaffinity to core 0 / core 1
  arena1    MALLOC_ARENA_MAX=1
  nommap    MALLOC_MMAP_THRESHOLD_=1 GiB and MALLOC_TRIM_THRESHOLD_=1 GiB (glibc never mmaps
            nor trims: freed activations are reused, not page-faulted in again each step)
  mmap64k   MALLOC_MMAP_THRESHOLD_=64 KiB (a fixed threshold: every activation is mmapped)
  nothp     prctl(PR_SET_THP_DISABLE)
  noaslr    run under `setarch -R` (no address-space randomisation)
  hashseed  PYTHONHASHSEED=0

Run:  PYTHONPATH=$PWD python benchmarks/process_levels.py --model gam --seq-len 1024 --procs 8
      [--variants base,nommap,...] [--steps 30] [--json out.jsonl]
It prints one line per process and a summary per variant: the spread of the per-process
medians (max/min), the gap that splits them into two levels, the step/control ratio, and
the rank correlation of the step time with each recorded factor. `uptime` load is printed
before and after (the figures mean little above a load of ~2 on 2 cores).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

VARIANTS: dict[str, dict] = {
    "base": {},
    "pin0": {"pin": 0},
    "pin1": {"pin": 1},
    "arena1": {"env": {"MALLOC_ARENA_MAX": "1"}},
    "nommap": {"env": {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}},
    "mmap64k": {"env": {"MALLOC_MMAP_THRESHOLD_": str(1 << 16)}},
    "nothp": {"nothp": True},
    "noaslr": {"prefix": ["setarch", os.uname().machine, "-R"]},
    "hashseed": {"env": {"PYTHONHASHSEED": "0"}},
}
_PR_SET_THP_DISABLE = 41
REPO = Path(__file__).resolve().parents[1]


def _anon_huge_kb() -> int:
    try:
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def _current_cpu() -> int:
    return int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[36])


def child(spec: dict) -> dict:
    """One fresh process: time the block step and the control kernel, interleaved."""
    if spec.get("pin") is not None:
        os.sched_setaffinity(0, {spec["pin"]})
    if spec.get("nothp"):
        ctypes.CDLL(None).prctl(_PR_SET_THP_DISABLE, 1, 0, 0, 0)
    import torch

    from gam_bench.models import registry

    torch.set_num_threads(1)
    torch.manual_seed(0)
    T, d = spec["seq_len"], 64
    overrides = {"n_heads": 1} if spec["model"].startswith("transformer") else {}
    block = registry.build_block(spec["model"], d_model=d, max_seq_len=T, dropout=0.0, **overrides).train()
    x = torch.randn(1, T, d, requires_grad=True)  # (B, T, D)
    a, b, c = torch.randn(T, d), torch.randn(d, 4 * d), torch.empty(T, 4 * d)  # control buffers

    def step() -> None:
        block.zero_grad(set_to_none=True)
        x.grad = None
        block(x).float().mean().backward()  # (B, T, D) -> scalar

    def control() -> None:
        for _ in range(8):
            torch.mm(a, b, out=c)  # (T, d) @ (d, 4d) -> (T, 4d), no allocation

    for _ in range(3):
        step()
        control()
    steps, controls = [], []
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(spec["steps"]):
        t0 = time.perf_counter()
        step()
        t1 = time.perf_counter()
        control()
        t2 = time.perf_counter()
        steps.append((t1 - t0) * 1e3)
        controls.append((t2 - t1) * 1e3)
    after = resource.getrusage(resource.RUSAGE_SELF)
    weight = next(block.parameters())
    n = spec["steps"]
    return {
        "variant": spec["variant"],
        "step_ms": statistics.median(steps),
        "control_ms": statistics.median(controls),
        "minflt_per_step": (after.ru_minflt - before.ru_minflt) / n,
        "nivcsw_per_step": (after.ru_nivcsw - before.ru_nivcsw) / n,
        "anon_huge_kb": _anon_huge_kb(),
        "x_mod_4k": x.data_ptr() % 4096,
        "x_mod_2m": x.data_ptr() % (2 << 20),
        "w_mod_4k": weight.data_ptr() % 4096,
        "w_mod_2m": weight.data_ptr() % (2 << 20),
        "cpu": _current_cpu(),
        "capability": torch.backends.cpu.get_cpu_capability(),
    }


def spawn(variant: str, model: str, seq_len: int, steps: int) -> dict:
    setting = VARIANTS[variant]
    spec = {"variant": variant, "model": model, "seq_len": seq_len, "steps": steps, **setting}
    spec.pop("env", None), spec.pop("prefix", None)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **setting.get("env", {})}
    cmd = [*setting.get("prefix", []), sys.executable, __file__, "--child", json.dumps(spec)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _spearman(xs: list[float], ys: list[float]) -> float:
    from scipy.stats import spearmanr

    if len(set(xs)) < 2 or len(set(ys)) < 2:
        return float("nan")
    return float(spearmanr(xs, ys).statistic)


def _levels(values: list[float]) -> tuple[float, float]:
    """(max/min, the largest relative gap between consecutive sorted values)."""
    s = sorted(values)
    gaps = [b / a for a, b in zip(s, s[1:])] or [1.0]
    return s[-1] / s[0], max(gaps)


FACTORS = [
    "control_ms",
    "minflt_per_step",
    "nivcsw_per_step",
    "anon_huge_kb",
    "x_mod_4k",
    "x_mod_2m",
    "w_mod_2m",
    "cpu",
]


def summarise(rows: list[dict]) -> None:
    print(
        f"\n{'variant':9} {'n':>2} {'step med':>9} {'max/min':>8} {'gap':>6} {'ctl max/min':>11} {'ratio max/min':>13}"
    )
    for variant in dict.fromkeys(r["variant"] for r in rows):
        group = [r for r in rows if r["variant"] == variant]
        steps = [r["step_ms"] for r in group]
        ratio = [r["step_ms"] / r["control_ms"] for r in group]
        spread, gap = _levels(steps)
        cspread, _ = _levels([r["control_ms"] for r in group])
        rspread, _ = _levels(ratio)
        print(
            f"{variant:9} {len(group):2d} {statistics.median(steps):9.2f} {spread:8.2f} {gap:6.2f} "
            f"{cspread:11.2f} {rspread:13.2f}"
        )
    print("\nrank correlation of step_ms with each factor, over all processes:")
    steps = [r["step_ms"] for r in rows]
    for factor in FACTORS:
        print(f"  {factor:16} {_spearman(steps, [float(r[factor]) for r in rows]):+.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child")
    parser.add_argument("--model", default="gam")
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--procs", type=int, default=8, help="fresh processes per variant")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--json", type=Path, help="append one JSON line per process here")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    print("load before:", os.getloadavg())
    rows = []
    for i in range(args.procs):
        for variant in args.variants.split(","):
            row = spawn(variant, args.model, args.seq_len, args.steps)
            row["load_1m"] = os.getloadavg()[0]
            rows.append(row)
            print(
                f"{i:2d} {variant:9} step {row['step_ms']:7.2f} ms  control {row['control_ms']:6.3f} ms  "
                f"flt/step {row['minflt_per_step']:7.1f}  ivcsw/step {row['nivcsw_per_step']:5.2f}  "
                f"THP {row['anon_huge_kb']:6d} kB  x%2M {row['x_mod_2m']:8d}  cpu {row['cpu']}  "
                f"load {row['load_1m']:.2f}",
                flush=True,
            )
            if args.json:
                with args.json.open("a") as fh:
                    fh.write(json.dumps({**row, "model": args.model, "seq_len": args.seq_len}) + "\n")
    print("load after:", os.getloadavg())
    summarise(rows)


if __name__ == "__main__":
    main()
