"""Where does a training run first go non-finite? Runs one perplexity cell of a suite in this
process with global module hooks and reports the first module whose forward output or
backward gradient is non-finite, with the largest magnitudes of the steps before.

    python benchmarks/divergence_probe.py suites/perplexity.yaml --device cpu --model mamba-paper \
        [--chunk 32] [--max-steps 400]

`--chunk` sets the CPU chunk of Mamba's torch scan (models/selective_scan.CHUNK_SIZE) first.
The run stops at the first non-finite value (or after --max-steps) and prints a report.
"""

from __future__ import annotations

import argparse
import collections
import math
import sys

import torch

from gam_bench.cell import expand
from gam_bench.runner.preflight import preflight
from gam_bench.suite import load_suite


class Probe:
    """Global forward/backward hooks: per step, each module's max |output| and max |grad|."""

    def __init__(self, history: int = 5) -> None:
        self.names: dict[int, str] = {}
        self.step = 0
        self.current: dict[str, float] = {}
        self.past: collections.deque = collections.deque(maxlen=history)
        self.first: tuple[int, str, str, float] | None = None

    def name_modules(self, model: torch.nn.Module) -> None:
        self.names = {id(m): n or "<root>" for n, m in model.named_modules()}

    def _see(self, module, phase: str, tensors) -> None:
        name = self.names.get(id(module))
        if name is None:
            return
        for t in tensors:
            if not isinstance(t, torch.Tensor) or not t.is_floating_point():
                continue
            peak = t.detach().abs().max().item() if t.numel() else 0.0
            key = f"{phase} {name}"
            self.current[key] = max(self.current.get(key, 0.0), peak)
            if not math.isfinite(peak) and self.first is None:
                self.first = (self.step, phase, name, peak)

    def forward_hook(self, module, args, output) -> None:
        self._see(module, "fwd", output if isinstance(output, tuple) else (output,))

    def backward_hook(self, module, grad_input, grad_output) -> None:
        self._see(module, "bwd(grad_output)", grad_output)
        self._see(module, "bwd(grad_input)", grad_input)

    def end_step(self) -> None:
        self.past.append((self.step, self.current))
        self.current = {}
        self.step += 1


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("suite")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", required=True)
    parser.add_argument("--chunk", type=int, default=None)
    parser.add_argument("--max-steps", type=int, default=400)
    parser.add_argument("--worker-like", action="store_true", help="tune malloc and prime as a worker does")
    args = parser.parse_args()

    if args.worker_like:
        from gam_bench.measure.memory import tune_malloc
        from gam_bench.runner.worker import _prime

        tune_malloc()
        _prime(args.device)

    if args.chunk is not None:
        from gam_bench.models import selective_scan

        selective_scan.CHUNK_SIZE["cpu"] = args.chunk
    suite = load_suite(args.suite)
    config = suite.for_device(args.device)
    cells = [c for c in preflight(config, expand(suite, args.device, threads=1), suite.source) if c.model == args.model]
    cell = cells[0]
    torch.set_num_threads(1)

    from gam_bench.models import registry
    from gam_bench.tasks import perplexity, step

    probe = Probe()
    build = registry.build

    def build_and_name(*a, **k):
        model = build(*a, **k)
        probe.name_modules(model)
        return model

    registry.build = build_and_name
    torch.nn.modules.module.register_module_forward_hook(probe.forward_hook)
    torch.nn.modules.module.register_module_full_backward_hook(probe.backward_hook)
    train_step = step.train_step
    losses: list[float] = []

    def probed_step(model, optimizer, *a, **k):
        loss = train_step(model, optimizer, *a, **k)
        losses.append(loss)
        bad_params = [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]
        probe.end_step()
        if probe.first is not None or bad_params or probe.step >= args.max_steps:
            report(probe, losses, bad_params, model)
            sys.exit(0)
        return loss

    perplexity.train_step = probed_step
    perplexity.run(cell)
    print("the run ended without a non-finite value")
    return 0


def report(probe: Probe, losses: list[float], bad_params: list[str], model) -> None:
    print(f"steps run: {probe.step}; last losses: {[round(x, 4) for x in losses[-6:]]}")
    if probe.first is None and not bad_params:
        print("no non-finite value")
        return
    if probe.first:
        step, phase, name, peak = probe.first
        print(f"first non-finite: step {step} (0-based), {phase} of {name!r}: {peak}")
    if bad_params:
        print(f"non-finite parameters after the step: {bad_params[:8]}")
    for step, peaks in probe.past:
        top = sorted(peaks.items(), key=lambda kv: -kv[1] if math.isfinite(kv[1]) else -math.inf)[:8]
        print(f"step {step}: " + "; ".join(f"{k} {v:.3g}" for k, v in top))


if __name__ == "__main__":
    raise SystemExit(main())
