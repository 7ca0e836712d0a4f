"""Is a perplexity figure stable under rounding-level changes? Trains one model of a suite's
profile in this process with a changed learning rate, Mamba backend or torch-scan chunk, and
prints its evaluations (or where it diverged). Run several in parallel and compare.

    python benchmarks/perplexity_stability.py suites/perplexity.yaml --model mamba-paper \\
        [--lr 3e-3] [--backend torch|cpu-fused] [--chunk 32] [--device cpu]
"""

from __future__ import annotations

import argparse
import json

import torch

from gam_bench.cell import expand
from gam_bench.runner.preflight import preflight
from gam_bench.suite import load_suite
from gam_bench.tasks.perplexity import measure
from gam_bench.training.divergence import Diverged


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("suite")
    parser.add_argument("--model", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--backend", default=None, help="the model's backend override (Mamba: torch, cpu-fused)")
    parser.add_argument("--chunk", type=int, default=None, help="CPU chunk of Mamba's torch scan")
    args = parser.parse_args()
    if args.chunk is not None:
        from gam_bench.models import selective_scan

        selective_scan.CHUNK_SIZE["cpu"] = args.chunk
    suite = load_suite(args.suite)
    cells = preflight(suite.for_device(args.device), expand(suite, args.device, threads=1), suite.source)
    cell = next(c for c in cells if c.model == args.model)
    if args.lr is not None:
        cell = cell.model_copy(update={"settings": cell.settings.model_copy(update={"lr": args.lr})})
    if args.backend is not None:
        backend = {"backend": args.backend}
        resolved = {**cell.resolved_config, **backend} if cell.resolved_config else None
        cell = cell.model_copy(update={"overrides": {**cell.overrides, **backend}, "resolved_config": resolved})
    torch.set_num_threads(1)
    label = {"model": args.model, "lr": cell.settings.lr, "backend": args.backend, "chunk": args.chunk}
    try:
        rows = measure.run(cell)
    except Diverged as exc:
        print(json.dumps({**label, "diverged": exc.reason}))
        return 0
    for row in rows:
        keys = ("step", "tokens_seen", "train_loss", "val_loss", "val_ppl", "backend")
        print(json.dumps({**label, **{k: row[k] for k in keys}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
