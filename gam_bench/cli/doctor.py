"""`gam-bench doctor`: can this machine run a suite? One table: device, torch / CUDA versions,
SDPA kernels, mamba-ssm and causal-conv1d status with the reason, the memory cap, and one
tiny forward+backward cell per model on the device (in-process, through the model registry).

Exit 0 when everything the suite (or, without --suite, every registered model) needs runs;
1 when something it needs cannot run (a model's tiny cell fails, or a model asks for
`backend: mamba-ssm` where it is unavailable).
"""

from __future__ import annotations

import argparse
from typing import Any

TINY = {
    "d_model": 16,
    "n_heads": 2,
    "n_layers": 1,
    "vocab_size": 64,
    "max_seq_len": 32,
    "num_memory_slots": 8,
    "headdim": 8,  # mamba2: int(3.5 * 16) = 56 channels, 7 heads
}
TINY_SEQ_LEN = 32


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "doctor",
        help="check that this machine can run a suite (device, kernels, models)",
        description="Check that this machine can run a suite: device, torch / CUDA versions, SDPA kernels, "
        "mamba-ssm and causal-conv1d status with the reason, the memory cap its cells run with, and one "
        "tiny forward+backward per model. Exit 0 when everything needed runs, 1 when something cannot.",
    )
    p.add_argument("--suite", help="suite file: check its models, dtype and memory cap (default: every model)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ... (default: auto)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from gam_bench.measure.environment import resolve_device

    device = resolve_device(args.device)
    models, dtype, cap_fraction, cap_gb = _needs(args.suite, device)
    table, ok = build_table(device, models, dtype, cap_fraction, cap_gb)
    Console().print(table)
    return 0 if ok else 1


def _needs(suite_path: str | None, device: str) -> tuple[list[tuple[str, dict]], str, float, float | None]:
    """(models with their overrides, dtype, mem_cap_fraction, mem_cap_gb) that a suite needs; without
    a suite, the cap every suite gets by default (suite.Limits: the one source `run` uses too)."""
    from gam_bench.models import registry
    from gam_bench.settings import Limits
    from gam_bench.suite import load_suite

    if suite_path is None:
        limits = Limits()
        return [(name, {}) for name in registry.available()], "float32", limits.mem_cap_fraction, limits.mem_cap_gb

    config = load_suite(suite_path).for_device(device)
    dtype = config.dtype[0] if isinstance(config.dtype, list) else config.dtype
    models = [(entry.name, dict(entry.overrides)) for entry in config.models]
    return models, str(dtype), config.limits.mem_cap_fraction, config.limits.mem_cap_gb


def build_table(device: str, models, dtype: str, cap_fraction: float, cap_gb: float | None):
    """(rich Table, whether everything needed runs)."""
    import torch
    from rich.table import Table

    from gam_bench.measure import memory
    from gam_bench.models import backends

    table = Table(title=f"gam-bench doctor ({device})", show_header=True)
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    table.add_row("device", "ok", device)
    table.add_row("torch", "ok", f"{torch.__version__} (CUDA {torch.version.cuda or '-'})")
    table.add_row("sdpa kernels", "ok", sdpa_kernels_available(torch.device(device)))
    available, path, reason = backends.mamba_backend_status()
    table.add_row("mamba-ssm", "ok" if available else "unavailable", f"{path}: {reason}" if reason else path)
    ssd = backends.ssd_kernel_reason()
    table.add_row("mamba-ssm ssd", "ok" if ssd is None else "unavailable", ssd or "imports (Mamba2 kernel)")
    conv = backends.causal_conv1d_reason()
    table.add_row("causal-conv1d", "ok" if conv is None else "unavailable", conv or "imports")
    fla = backends.fla_reason("fla.ops.gla")
    table.add_row("fla", "ok" if fla is None else "unavailable", fla or "imports (GLA / RetNet kernels)")
    from gam_bench.models import cpu_scan

    scan_reason = cpu_scan.unavailable_reason()
    detail = scan_reason or f"built in {cpu_scan.kernel_cache_dir()}"
    table.add_row("fused CPU scan", "ok" if scan_reason is None else "unavailable", detail)
    dev = torch.device(device)
    cap = memory.cap_bytes(cap_gb, cap_fraction, dev)
    table.add_row(
        "memory cap", "ok", f"{cap / 2**30:.1f} GiB ({'mem_cap_gb' if cap_gb else f'{cap_fraction:g} of total'})"
    )
    ok = True
    for name, overrides in models:
        status, detail = tiny_cell(name, overrides, device, dtype)
        ok = ok and status == "ok"
        table.add_row(f"model {name}", status, detail)
    return table, ok


def sdpa_kernels_available(device) -> str:
    """The SDPA backends this torch build enables for `device` (enabled flags, not shape checks)."""
    import torch

    if device.type != "cuda":
        return "flash_cpu, math" if device.type == "cpu" else "math (+ device kernels)"
    cuda = torch.backends.cuda
    flags = {
        "flash": cuda.flash_sdp_enabled(),
        "efficient": cuda.mem_efficient_sdp_enabled(),
        "cudnn": getattr(cuda, "cudnn_sdp_enabled", lambda: False)(),
        "math": cuda.math_sdp_enabled(),
    }
    return ", ".join(name for name, on in flags.items() if on)


def tiny_cell(name: str, overrides: dict[str, Any], device: str, dtype: str) -> tuple[str, str]:
    """One tiny LM forward+backward of `name` on `device` under the suite's dtype: ("ok", backend
    and reason) or ("error", the first line of what went wrong)."""
    import contextlib

    import torch

    from gam_bench.models import backends, registry

    try:
        fields = registry.get_spec(name).config_cls.model_fields
        size = {k: v for k, v in TINY.items() if k in fields}
        keep = {k: v for k, v in overrides.items() if k not in size and k not in ("n_heads",)}
        model = registry.build(name, **{**keep, **size}).to(device)
        vocab = getattr(model, "config", None)
        vocab_size = getattr(vocab, "vocab_size", size.get("vocab_size", 64))
        idx = torch.randint(0, vocab_size, (2, TINY_SEQ_LEN), device=device)  # (B, T)
        autocast = contextlib.nullcontext()
        if dtype != "float32":
            autocast = torch.autocast(torch.device(device).type, dtype=getattr(torch, dtype))
        with autocast:
            logits = model(idx)  # (B, T, V)
        logits.float().mean().backward()
        if not all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters()):
            return "error", "non-finite gradients"
        backend = str(getattr(model, "backend", "") or "-")
        reason = backends.backend_reason(model)
        return "ok", backend + (f" ({reason})" if reason else "")
    except Exception as exc:  # noqa: BLE001 - one model's failure is a row, the rest still run
        text = str(exc).strip().splitlines()
        return "error", f"{type(exc).__name__}: {text[0] if text else ''}"[:200]
