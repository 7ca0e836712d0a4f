"""Eager vs torch.compile (inductor) forward+backward of one block per model, and the fraction of peak.

    PYTHONPATH=$PWD python benchmarks/compile_modes.py --lengths 1024 8192 --out /tmp/compile_modes.json

For each (model, length): build the block (seed 0, d_model 64, dropout 0; attention with
n_heads 1 as in suites/scaling.yaml's CPU profile), compile it
(`compile_s`, untimed), check parity (forward output and every gradient), then time eager
and compiled steps interleaved round by round (the machine is shared: interleaving puts both
under the same load), and report medians. FLOPs come from one eager step under
FlopCounterMode (the compiled step does the same matmuls); the fraction of peak is
flops / median time / the calibrated float32 matmul peak at the same thread count
(`gam_bench.measure.calibrate.peak_for`). Not a pytest file: run it by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from gam_bench import execution
from gam_bench.measure.calibrate import mfu, peak_for
from gam_bench.measure.flops import count_flops
from gam_bench.models import registry

MODELS = ("gam", "transformer", "transformer-naive", "mamba")


def build(name: str, d_model: int, seq_len: int, n_heads: int) -> torch.nn.Module:
    fields = registry.get_spec(name).config_cls.model_fields
    extra = {k: v for k, v in (("max_seq_len", seq_len), ("dropout", 0.0), ("n_heads", n_heads)) if k in fields}
    torch.manual_seed(0)
    return registry.build_block(name, d_model=d_model, **extra).train()


def fwd_bwd(block: torch.nn.Module, module, x: torch.Tensor):
    def step() -> None:
        block.zero_grad(set_to_none=True)
        x.grad = None
        module(x).float().mean().backward()  # (B, T, D) -> scalar

    return step


def timed(step, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        step()
        out.append(time.perf_counter() - start)
    return out


def measure(name: str, seq_len: int, args: argparse.Namespace, peak: float) -> dict:
    block = build(name, args.d_model, seq_len, args.n_heads)
    x = torch.randn(args.batch, seq_len, args.d_model, requires_grad=True)  # (B, T, D)
    eager = fwd_bwd(block, block, x)
    compiled_module = execution.compile_module(block, args.compile)
    compiled = fwd_bwd(block, compiled_module, x)
    compile_s = execution.compile_step(compiled, args.compile)
    parity = execution.check_parity(block, compiled_module, [x], dtype="float32", train=True)
    flops = count_flops(eager)
    samples: dict[str, list[float]] = {"eager": [], "compiled": []}
    with execution.RecompileCounter() as recompiles:
        for step in (eager, compiled):
            step()  # warmup
        for r in range(args.rounds):
            order = ("eager", "compiled") if r % 2 == 0 else ("compiled", "eager")
            for key in order:
                samples[key] += timed(eager if key == "eager" else compiled, args.steps)
    row = {
        "model": name,
        "seq_len": seq_len,
        "compile": args.compile,
        "compile_s": compile_s,
        "recompiles": recompiles.recompiles,
        "max_rel_err": parity.max_rel_err,
        "parity_ok": parity.ok,
        "flops": flops,
        "peak_flops_per_s": peak,
    }
    for key, values in samples.items():
        median = statistics.median(values)
        row[f"{key}_ms"] = median * 1e3
        row[f"{key}_ms_iqr"] = [q * 1e3 for q in statistics.quantiles(values, n=4)[::2]] if len(values) > 1 else None
        row[f"{key}_mfu"] = mfu(flops / median, peak)
    row["speedup"] = row["eager_ms"] / row["compiled_ms"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--lengths", nargs="+", type=int, default=[1024, 8192])
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--n-heads", type=int, default=1, help="attention heads (1: scaling.yaml's CPU profile)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compile", default="default", choices=execution.COMPILE_MODES[1:])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (eager, compiled alternate)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per variant per round")
    parser.add_argument("--out", help="append one JSON line per (model, length) here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peak = peak_for("cpu", "float32", args.threads)["peak_flops_per_s"]
    print(f"float32 peak {peak / 1e9:.1f} GFLOP/s at {args.threads} thread(s); load {os.getloadavg()}", flush=True)
    for seq_len in args.lengths:
        for name in args.models:
            row = measure(name, seq_len, args, peak)
            row["load_avg_1m"] = os.getloadavg()[0]
            print(
                f"{name:18s} T={seq_len:5d} eager {row['eager_ms']:9.1f} ms  compiled {row['compiled_ms']:9.1f} ms  "
                f"x{row['speedup']:.2f}  compile {row['compile_s']:.0f}s  mfu {row['eager_mfu']:.3f} -> "
                f"{row['compiled_mfu']:.3f}  rel_err {row['max_rel_err']:.1e}  recompiles {row['recompiles']}  "
                f"load {row['load_avg_1m']:.1f}",
                flush=True,
            )
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
