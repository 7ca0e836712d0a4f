"""The throughput task: time one model (a block or the whole LM) at one shape.

Modes
- forward: eval mode, no autograd graph (`torch.no_grad`).
- forward_backward: train mode; gradients set to None, forward, mean loss (block: mean of
  the output; lm: next-token cross-entropy), backward. Block inputs require grad, as they
  would inside a stack.
- train_step: forward_backward plus AdamW (paper settings). At lm level this is
  `gam_bench.training.step.train_step`, the same step the perplexity task trains with.

dtype float16 / bfloat16 run under `torch.autocast` (weights stay float32; gam_bench/precision.py).
float16 forward_backward and train_step steps scale the loss with `torch.amp.GradScaler`
(training/step.make_scaler) before backward, as float16 training does; train_step also lets the
scaler unscale, skip inf/nan steps and update its scale. Without it a mean loss's gradient
underflows to zero at long lengths.

Order: build (models/builder.py: the config pre-flight resolved), then the execution mode
(`execution.prepare`: compile, one untimed compiling step -> compile_s, parity against
eager -> max_rel_err / parity_ok, CUDA-graph capture), one counted step (untimed, always the
eager step: FLOPs are the model's, not the kernels'; `measure.counted_step.count_step` gives
the peak tensor bytes always and the FLOPs when `measure.flops`, while `SDPAKernels` records
which attention kernel ran), then warmup and timed steps of the compiled step inside a
recompile counter (syncing only the cell's own device; on an accelerator also timed with
device events). For an eager cell the counted step is the step itself, so it is the first of
the `measure.warmup` warm-up steps. A control kernel (a fixed matmul, measure/control.py) is
timed just before warmup and just after the timed steps: `control_ms`, the machine's speed
at the time, for the gate. FLOPs are None for a backend whose kernels the counter cannot see
(`flops.counts_every_kernel`: mamba-ssm), never a partial count. The worker measures peak
RSS / allocator memory around the whole cell. `mfu` = flops_per_s over this machine's
calibrated matmul peak for the dtype (`cell.peak_flops_per_s`, from pre-flight). The
fairness audit: `roofline_ms` = max(FLOPs / that peak, the family's minimal bytes
(models/work.py) / the calibrated bandwidth), `roofline_fraction` = roofline_ms / time_ms.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from gam_bench import execution
from gam_bench.cell import Cell
from gam_bench.measure.calibrate import mfu, roofline_ms
from gam_bench.measure.control import Control
from gam_bench.measure.counted_step import CountedStep, count_step
from gam_bench.measure.flops import counts_every_kernel
from gam_bench.measure.op_count import OpCount
from gam_bench.measure.provenance import SDPAKernels
from gam_bench.measure.timing import Timing, time_steps, warm_up
from gam_bench.models import backends, work
from gam_bench.models.builder import build_for
from gam_bench.precision import autocast_for
from gam_bench.tasks.base import SILENT, RunContext
from gam_bench.training import step as lm_step


def make_step(cell: Cell, module: nn.Module, config: Any) -> Callable[[], None]:
    """A zero-argument function running one step of the cell's mode on fixed random inputs."""
    device = torch.device(cell.device)
    B, T = cell.batch_size, cell.seq_len
    if cell.level == "block":
        x = torch.randn(B, T, config.d_model, device=device)  # (B, T, D)
        return _block_step(cell, module, x)
    idx = torch.randint(0, config.vocab_size, (B, T + 1), device=device)  # (B, T+1)
    return _lm_step(cell, module, idx[:, :-1], idx[:, 1:])


def _block_step(cell: Cell, block: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    if cell.mode == "forward":
        return _forward_step(cell, block, x)
    x.requires_grad_(True)
    optimizer = lm_step.make_optimizer(block) if cell.mode == "train_step" else None
    scaler = lm_step.make_scaler(cell.dtype, cell.device)
    block.train()

    def step() -> None:
        block.zero_grad(set_to_none=True)
        x.grad = None
        with autocast_for(cell):
            loss = block(x).float().mean()  # (B, T, D) -> scalar
        lm_step.backward(loss, scaler)
        if optimizer is not None:
            _optimizer_step(optimizer, scaler)

    return step


def _optimizer_step(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None) -> None:
    """optimizer.step(), or through the scaler (unscale, skip on inf/nan, update the scale)."""
    if scaler is None:
        optimizer.step()
        return
    scaler.step(optimizer)
    scaler.update()


def _lm_step(cell: Cell, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> Callable[[], None]:
    if cell.mode == "forward":
        return _forward_step(cell, model, inputs)
    model.train()
    scaler = lm_step.make_scaler(cell.dtype, cell.device)
    if cell.mode == "train_step":
        optimizer = lm_step.make_optimizer(model)
        return lambda: lm_step.train_step(model, optimizer, inputs, targets, autocast=autocast_for(cell), scaler=scaler)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        with autocast_for(cell):
            loss = lm_step.lm_loss(model(inputs), targets)  # (B, T, V) -> scalar
        lm_step.backward(loss, scaler)

    return step


def _forward_step(cell: Cell, module: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    module.eval()

    def step() -> None:
        with torch.no_grad(), autocast_for(cell):
            module(x)

    return step


def parity_inputs(cell: Cell, config: Any) -> list[torch.Tensor]:
    """Inputs of one forward call at the cell's shape, for the compiled-vs-eager check."""
    device = torch.device(cell.device)
    if cell.level == "block":
        return [torch.randn(cell.batch_size, cell.seq_len, config.d_model, device=device)]  # (B, T, D)
    return [torch.randint(0, config.vocab_size, (cell.batch_size, cell.seq_len), device=device)]  # (B, T)


def run(cell: Cell, ctx: RunContext = SILENT) -> list[dict[str, Any]]:
    """Measure one throughput cell; returns one row of measurement columns."""
    torch.manual_seed(cell.seed)
    device = torch.device(cell.device)
    module, config = build_for(cell)
    ex = execution.prepare(cell, module, lambda m: make_step(cell, m, config), lambda: parity_inputs(cell, config))
    backend = str(getattr(module, "backend", "") or "")
    count_flops = cell.measure.flops and counts_every_kernel(backend)
    counted, sdpa_kernel, dispatched_ops = counted_step(ex.counted, count_flops, device)
    control = Control(device)
    control.sample()
    with ex.counting():
        timing = timed_steps(ex.step, cell, device, counted_first=ex.step is ex.counted)
    control.sample()
    seconds = timing.median_ms / 1e3
    flops = counted.flops
    flops_per_s = flops / seconds if flops is not None else None
    params = sum(p.numel() for p in module.parameters())
    audit = roofline_columns(cell, config, params, flops, timing.median_ms)
    return [
        {
            **ex.columns,
            "peak_flops_per_s": cell.peak_flops_per_s,
            "mfu": mfu(flops_per_s, cell.peak_flops_per_s),
            "backend": backend,
            "backend_reason": backends.backend_reason(module),
            "sdpa_kernel": sdpa_kernel,
            "params": params,
            "d_model": getattr(config, "d_model", None),
            "n_layers": getattr(config, "n_layers", None) if cell.level == "lm" else 1,
            **timing_columns(timing),
            "control_ms": control.median_ms,
            "tokens_per_s": cell.batch_size * cell.seq_len / seconds,
            "peak_tensor_bytes": counted.peak_tensor_bytes,
            "flops": float(flops) if flops is not None else None,
            "dispatched_ops": dispatched_ops,
            "flops_per_s": flops_per_s,
            **audit,
        }
    ]


def roofline_columns(cell: Cell, config: Any, params: int, flops: int | None, time_ms: float) -> dict[str, Any]:
    """The fairness audit's columns: the family's minimal bytes (models/work.py; None for a plugin
    family that declares none), the roofline time and the fraction of it achieved."""
    min_bytes = None
    if work.declared(cell.model):
        args = (cell.level, cell.mode, cell.batch_size, cell.seq_len, cell.dtype, params)
        min_bytes = work.minimal_bytes(cell.model, config, *args)
    roof = roofline_ms(flops, min_bytes, cell.peak_flops_per_s, cell.peak_bandwidth_bytes_per_s)
    return {
        "peak_bandwidth_bytes_per_s": cell.peak_bandwidth_bytes_per_s,
        "min_bytes": min_bytes,
        "roofline_ms": roof,
        "roofline_fraction": roof / time_ms if roof is not None and time_ms > 0 else None,
    }


def counted_step(step: Callable[[], None], flops: bool, device: torch.device) -> tuple[CountedStep, str, int]:
    """The one untimed counted step: (FLOPs if `flops` and peak tensor bytes, the SDPA kernels
    that ran, the number of aten ops dispatched)."""
    with SDPAKernels(dispatch=False) as kernels:  # its ops come through the counted step's mode
        ops = OpCount(then=kernels.observe)
        counted = count_step(step, flops=flops, device=device, observe=ops.observe)
    return counted, kernels.kernels, ops.count


def timed_steps(step: Callable[[], None], cell: Cell, device: torch.device, counted_first: bool = False) -> Timing:
    """Warmup, then the timed steps, syncing only `device` (the cell's).

    counted_first: the counted step just ran this same step (an eager cell), so it was the
    first warm-up step and `measure.warmup - 1` more are run."""
    measure = cell.measure
    warm_up(step, max(measure.warmup - int(counted_first), 0), device)
    return time_steps(step, measure.repeats, measure.min_run_time_s, measure.max_repeats, device=device)


def timing_columns(timing: Timing) -> dict[str, Any]:
    """The host-clock and (accelerator only) device-event time columns of a row."""
    return {
        "time_ms": timing.median_ms,
        "time_ms_q25": timing.q25_ms,
        "time_ms_q75": timing.q75_ms,
        "time_samples_ms": timing.samples_ms,
        "device_time_ms": timing.device_median_ms,
        "device_time_samples_ms": timing.device_samples_ms,
    }
