"""One block per family, side by side: forward+backward time and memory against length, and decode.

For each model: one block at --d-model (64), batch 1, float32, --threads (1) CPU threads, no
dropout, at each length of --lengths (1k..8k). The steps are interleaved: for every length,
--repeats rounds, each timing one forward+backward step of every model in turn, so load swings
hit all models alike. Per model it reports

  time at each length (median of the rounds) and the time slope (least-squares log-log fit over
      every length); at the longest length, the ratio to --baseline;
  peak tensor memory of one untimed step (gam_bench.measure.counted_step) and its slope;
  decode at the longest length: prefill the block, then --decode-tokens single-token steps,
      each timed on its own (median); the state's bytes (gam_bench.models.decode.state_bytes);
  the path each ran: the block's `backend` (training step) and `decode_backend` (decode step).

  PYTHONPATH=$PWD python benchmarks/field_blocks.py --models gam mamba2 "gated-deltanet:num_heads=1"

A model is `name` or `name:field=value,field=value` (config overrides, values read as YAML).
Prints a Markdown table, with the date, `uptime` and the command, for docs/results/.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch
import yaml

from gam_bench.measure.counted_step import count_step
from gam_bench.models import build_block
from gam_bench.models.decode import decode_backend, state_bytes


def parse_model(spec: str) -> tuple[str, dict]:
    """ "name:a=1,b=x" -> ("name", {"a": 1, "b": "x"})."""
    name, _, rest = spec.partition(":")
    overrides = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        overrides[key.strip()] = yaml.safe_load(value)
    return name, overrides


def make_block(name: str, overrides: dict, d_model: int, length: int) -> torch.nn.Module:
    """The block at d_model, no dropout, long enough for `length` (positional families)."""
    fields = {"d_model": d_model, "dropout": 0.0, "max_seq_len": length, **overrides}
    return build_block(name, **fields)


def step_fn(block: torch.nn.Module, x: torch.Tensor):
    def step():
        block.zero_grad(set_to_none=True)
        block(x).sum().backward()

    return step


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure_training(models, lengths, d_model, repeats, paths):
    """{label: {length: (seconds per step: list, peak tensor bytes)}}, interleaved per length;
    paths[label] = (backend, decode_backend) of the block."""
    results = {label: {} for label, _, _ in models}
    for T in lengths:
        steps = {}
        for label, name, overrides in models:
            torch.manual_seed(0)
            block = make_block(name, overrides, d_model, T)
            paths[label] = (str(getattr(block, "backend", "")), decode_backend(block))
            x = torch.randn(1, T, d_model, requires_grad=True)  # (B, T, D)
            steps[label] = step_fn(block, x)
            steps[label]()  # warmup
            peak = count_step(steps[label], flops=False, device="cpu").peak_tensor_bytes
            results[label][T] = ([], peak)
        for _ in range(repeats):
            for label, step in steps.items():
                results[label][T][0].append(timed(step))
        print(
            f"  T={T}: " + ", ".join(f"{lb} {statistics.median(r[T][0]) * 1e3:.0f} ms" for lb, r in results.items()),
            file=sys.stderr,
        )
    return results


def measure_decode(name, overrides, d_model, T, tokens):
    """(median seconds per decode step at context T, state bytes after the prefill)."""
    torch.manual_seed(0)
    block = make_block(name, overrides, d_model, T + tokens).eval()
    x = torch.randn(1, T + tokens, d_model)  # (B, T + G, D)
    with torch.no_grad():
        _, state = block.prefill(x[:, :T])
        size = state_bytes(state)
        times = []
        for t in range(T, T + tokens):
            start = time.perf_counter()
            _, state = block.decode(x[:, t : t + 1], state)
            times.append(time.perf_counter() - start)
    return statistics.median(times), size


def _slope(lengths, values) -> str:
    """Least-squares slope of log(values) against log(lengths), over every length."""
    x, y = np.log(np.asarray(lengths, float)), np.log(np.asarray(values, float))
    return f"{np.polyfit(x, y, 1)[0]:.2f}"


def _length(T: int) -> str:
    return f"{T // 1024}k" if T % 1024 == 0 else str(T)


def report(models, lengths, training, decode, baseline, paths) -> str:
    longest = lengths[-1]
    base = statistics.median(training[baseline][longest][0]) if baseline in training else None
    at = f"@{_length(longest)}"
    head = ["model", "backend / decode path", *(f"ms @{_length(T)}" for T in lengths)]
    head += ["time slope", "memory slope", f"MiB {at}"]
    head += [f"x {baseline} {at}", f"decode ms {at}", "state KiB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, _, _ in models:
        rows = training[label]
        medians = [statistics.median(rows[T][0]) for T in lengths]
        peaks = [rows[T][1] for T in lengths]
        ratio = f"{medians[-1] / base:.2f}" if base else "-"
        step, size = decode[label]
        cells = [label, " / ".join(paths[label]), *(f"{m * 1e3:.0f}" for m in medians)]
        cells += [_slope(lengths, medians), _slope(lengths, peaks)]
        cells += [f"{peaks[-1] / 2**20:.1f}", ratio, f"{step * 1e3:.2f}", f"{size / 1024:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True, help="name or name:field=value,...")
    parser.add_argument("--lengths", nargs="+", type=int, default=[1024, 2048, 4096, 8192])
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--baseline", default="gam", help="the model the time at the longest length is divided by")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    models = [(spec, *parse_model(spec)) for spec in args.models]
    lengths = sorted(args.lengths)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    paths = {}
    training = measure_training(models, lengths, args.d_model, args.repeats, paths)
    decode = {
        label: measure_decode(name, ov, args.d_model, lengths[-1], args.decode_tokens) for label, name, ov in models
    }
    load_after = os.getloadavg()
    print(
        f"{started:%Y-%m-%d %H:%M} UTC, {platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{args.threads} thread(s); load (1-min) {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    )
    command = " ".join(sys.argv[1:] if argv is None else argv)
    print(f"command: PYTHONPATH=$PWD python benchmarks/field_blocks.py {command}\n")
    print(report(models, lengths, training, decode, args.baseline, paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
