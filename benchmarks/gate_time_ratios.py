"""Time ratios to set beside instruction ratios: each cell's step timed on this thread's CPU clock.

  PYTHONPATH=$PWD:$PWD/benchmarks python benchmarks/gate_time_ratios.py SUITE [SUITE ...] [--rounds 40] [--steps 5]
      Builds every cell of the suites (as the throughput task does: `models.builder.build_for`,
      `throughput.make_step`) in this one process, warms each up, then times them in rounds:
      every round runs `--steps` steps of each cell in turn, so the cells share the machine's
      moments. A step's time is the thread's CPU time (`time.thread_time`), which a
      descheduled thread does not accrue: on a loaded shared machine wall times of a small
      step swing several-fold, CPU times far less (docs/results/gate.md; cache and memory
      contention remain). Prints per cell the median CPU ms a step; `--out FILE` writes one JSON line per
      cell (its `cell_key`) for `gate_counts.py predict DIR --cpu-times FILE` to set beside the
      counted instructions.

One thread (`torch.set_num_threads(1)`, as `suites/ci.yaml`). The outcome depends on the
machine and its load (printed): record it in docs/results/gate.md, never assert it in a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def _load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def _steps(suites: list[Path]):
    from gam_bench.cell import expand
    from gam_bench.models.builder import build_for
    from gam_bench.suite import load_suite  # imports the suite's plugins
    from gam_bench.tasks.throughput import measure as throughput

    out = []
    for path in suites:
        for cell in expand(load_suite(path), "cpu", threads=1):
            torch.manual_seed(cell.seed)
            module, config = build_for(cell)
            out.append((cell, throughput.make_step(cell, module, config)))
    return out


def cell_key(config_json: str) -> str:
    """What a cell computes, whatever its measure settings: model, shape, mode and overrides
    (a probe's `probe_copy` left out), so counted rows find their CPU times."""
    config = json.loads(config_json)
    overrides = {k: v for k, v in (config.get("overrides") or {}).items() if k != "probe_copy"}
    keys = ("model", "level", "mode", "dtype", "batch_size", "seq_len")
    return json.dumps({**{k: config.get(k) for k in keys}, "overrides": overrides}, sort_keys=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suites", type=Path, nargs="+")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", type=Path, help="write one JSON line per cell here")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    torch.set_num_threads(1)
    print(f"start {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, load {_load()}", flush=True)
    cells = _steps(args.suites)
    for _, step in cells:
        for _ in range(3):
            step()
    times: dict[str, list[float]] = {cell.cell_id: [] for cell, _ in cells}
    for _ in range(args.rounds):
        for cell, step in cells:
            for _ in range(args.steps):
                t0 = time.thread_time()
                step()
                times[cell.cell_id].append((time.thread_time() - t0) * 1e3)
    lines = []
    for cell, _ in cells:
        values = times[cell.cell_id]
        median = statistics.median(values)
        q1, _, q3 = statistics.quantiles(values, n=4)
        print(f"{cell.cell_id}  {median:9.3f} CPU ms a step (IQR {q1:.3f}-{q3:.3f}), n={len(values)}", flush=True)
        record = {"key": cell_key(cell.config_json), "cpu_ms": median, "q25": q1, "q75": q3, "n": len(values)}
        lines.append(json.dumps(record))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    print(f"end {time.strftime('%H:%M:%S')}, load {_load()}", flush=True)


if __name__ == "__main__":
    main()
