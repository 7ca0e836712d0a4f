"""Which optional kernels can run on this machine, and why not when they cannot. Detection is
lazy and cached: importing mamba_ssm pulls in triton and CUDA libraries, so nothing here runs
at import time.

mamba-ssm has two paths, named apart in `backend` columns:
  mamba-ssm-fused: `mamba_inner_fn` (conv, projections and scan in one kernel; needs causal-conv1d),
  mamba-ssm-scan:  `selective_scan_fn` plus a torch Conv1d (causal-conv1d missing or broken).
An import that fails keeps its reason (the exception's type and first line, e.g. the usual
"undefined symbol" of a pip build against another torch), so `backend: auto` never measures
the slow torch scan silently.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable

import torch

MAMBA_SSM_FUSED = "mamba-ssm-fused"
MAMBA_SSM_SCAN = "mamba-ssm-scan"


@functools.cache
def import_error(module: str) -> str | None:
    """None when `module` imports, else why not: "<ExceptionType>: <first line of the message>"."""
    try:
        importlib.import_module(module)
    except Exception as exc:  # ImportError, or a CUDA/ABI mismatch (OSError, RuntimeError) raised while importing
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"{type(exc).__name__}: {first}"[:300]
    return None


def _cuda_reason() -> str | None:
    return None if torch.cuda.is_available() else f"no CUDA device (torch {torch.__version__})"


def mamba_ssm_available() -> bool:
    """True when mamba_ssm's selective-scan kernel imports and a CUDA device is present."""
    return mamba_ssm_reason() is None


def mamba_ssm_reason() -> str | None:
    """Why mamba_ssm's kernels cannot run here, or None when they can."""
    return _cuda_reason() or _prefixed("mamba_ssm", import_error("mamba_ssm.ops.selective_scan_interface"))


def causal_conv1d_available() -> bool:
    """True when the causal-conv1d kernel (mamba_ssm's fused fast path needs it) imports."""
    return causal_conv1d_reason() is None


def causal_conv1d_reason() -> str | None:
    """Why causal-conv1d cannot run here, or None when it can."""
    return _cuda_reason() or _prefixed("causal_conv1d", import_error("causal_conv1d"))


def _prefixed(name: str, reason: str | None) -> str | None:
    return f"{name} does not import ({reason})" if reason else None


def mamba_backend_status() -> tuple[bool, str, str]:
    """(available, path, reason) for mamba-ssm on this machine's CUDA device:
    (True, "mamba-ssm-fused", "") when both kernels import; (True, "mamba-ssm-scan", why the
    fused path cannot run) without causal-conv1d; (False, "torch-chunked-scan", why mamba-ssm
    cannot run) otherwise: what `backend: auto` runs for CUDA inputs, and why."""
    reason = mamba_ssm_reason()
    if reason is not None:
        return False, "torch-chunked-scan", reason
    conv_reason = causal_conv1d_reason()
    if conv_reason is not None:
        return True, MAMBA_SSM_SCAN, f"fused mamba_inner_fn unavailable: {conv_reason}"
    return True, MAMBA_SSM_FUSED, ""


def backend_reason(module: torch.nn.Module) -> str:
    """The first `backend_reason` among `module` and its submodules (Mamba mixers set one), or ""."""
    for sub in module.modules():
        reason = getattr(sub, "backend_reason", None)
        if isinstance(reason, str):
            return reason
    return ""


def fla_reason(module: str) -> str | None:
    """Why flash-linear-attention's op `module` (e.g. "fla.ops.gla") cannot run here, or None when it can."""
    return _cuda_reason() or _prefixed("fla", import_error(module))


def fla_available(module: str) -> bool:
    """True when fla's op `module` imports and a CUDA device is present."""
    return fla_reason(module) is None


MAMBA_SSM_SSD = "mamba-ssm-ssd"  # Mamba2's scan: mamba_ssm's `mamba_chunk_scan_combined` (triton)


def ssd_kernel_reason() -> str | None:
    """Why mamba_ssm's SSD chunk scan cannot run here, or None when it can."""
    return _cuda_reason() or _prefixed("mamba_ssm", import_error("mamba_ssm.ops.triton.ssd_combined"))


def fused_conv_reason(
    requested: str, device: torch.device, names: dict[str, str], kernel: str, kernel_reason: Callable[[], str | None]
) -> str:
    """`backend_reason` of a mixer whose backends are "torch" (a chunked form in PyTorch),
    "cpu-fused" (the same with the fused CPU conv, cpu_scan) and `kernel` (a CUDA library's, e.g.
    "fla"); `names` maps each to its path's name, `kernel_reason()` says why the library's kernel
    cannot run here (None when it can). `requested`: the mixer's backend setting."""
    if requested in ("torch", "cpu-fused"):
        return f"{names[requested]}: backend '{requested}' requested"
    cuda_only = f"{kernel} kernels are CUDA-only"
    if device.type == "cpu":
        from gam_bench.models import cpu_scan  # its ops register on import: only where asked

        reason = cpu_scan.unavailable_reason()
        if reason is None:
            return f"{names['cpu-fused']}: inputs on cpu ({cuda_only})"
        return f"{names['torch']}: inputs on cpu ({cuda_only}), fused CPU conv unavailable ({reason})"
    if device.type != "cuda":
        return f"{names['torch']}: inputs on {device.type} ({cuda_only})"
    reason = kernel_reason()
    return f"{names['torch']}: {reason}" if reason else names[kernel]
