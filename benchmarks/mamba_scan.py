"""Mamba's block with the torch scan and the fused CPU scan, beside GAM's, timed side by side.

    PYTHONPATH=$PWD python benchmarks/mamba_scan.py --lengths 1024 4096 8192 --rounds 7

One block each (seed 0, d_model 64, batch 1, dropout 0, forward+backward of the mean output,
block inputs requiring grad, as tasks/throughput.py's block step), at one thread by default.
Each round times one step of every (model, length) in turn, so all of them share the
machine's load; the medians over rounds and the ratios to GAM are printed as JSON, with the
load average before and after. Also the tensor-counted step (measure.counted_step) of each
Mamba variant once, and its dispatched op count. Not a pytest file: run it by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from gam_bench.measure.counted_step import count_step
from gam_bench.models import registry

VARIANTS = {
    "gam": ("gam", {}),
    "mamba-torch": ("mamba", {"backend": "torch"}),
    "mamba-cpu-fused": ("mamba", {"backend": "cpu-fused"}),
}


def build(name: str, overrides: dict, d_model: int, seq_len: int) -> torch.nn.Module:
    fields = registry.get_spec(name).config_cls.model_fields
    extra = {k: v for k, v in (("max_seq_len", seq_len), ("dropout", 0.0)) if k in fields}
    torch.manual_seed(0)
    return registry.build_block(name, d_model=d_model, **extra, **overrides).train()


def make_step(block: torch.nn.Module, x: torch.Tensor):
    def step() -> None:
        block.zero_grad(set_to_none=True)
        x.grad = None
        block(x).float().mean().backward()

    return step


def op_count(step) -> int:
    """Ops the dispatcher sees in one step (what a TorchDispatchMode pays for)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.n += 1
            return func(*args, **(kwargs or {}))

    with Count():
        step()
    return Count.n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 8192])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps = {}
    for T in args.lengths:
        for v in args.variants:
            name, overrides = VARIANTS[v]
            block = build(name, overrides, args.d_model, T)
            x = torch.randn(1, T, args.d_model, requires_grad=True)  # (B, T, D)
            steps[(v, T)] = make_step(block, x)
            steps[(v, T)]()  # warm-up (and the kernel build)
    load_before = os.getloadavg()
    times = {k: [] for k in steps}
    for _ in range(args.rounds):
        for k, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[k].append((time.perf_counter() - t0) * 1e3)
    load_after = os.getloadavg()
    out = {"threads": args.threads, "rounds": args.rounds, "load_before": load_before, "load_after": load_after}
    for T in args.lengths:
        gam = statistics.median(times[("gam", T)]) if ("gam", T) in times else None
        for v in args.variants:
            med = statistics.median(times[(v, T)])
            row = {"median_ms": round(med, 2), "ratio_to_gam": round(med / gam, 2) if gam else None}
            if v.startswith("mamba"):
                counted = time.perf_counter()
                count_step(steps[(v, T)], flops=True, device=torch.device("cpu"))
                row["counted_step_ms"] = round((time.perf_counter() - counted) * 1e3, 1)
                row["dispatched_ops"] = op_count(steps[(v, T)])
            out[f"{v}@{T}"] = row
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
