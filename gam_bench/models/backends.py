"""Which optional kernels can run on this machine. Detection is lazy and cached: importing
mamba_ssm pulls in triton and CUDA libraries, so nothing here runs at import time.
"""

from __future__ import annotations

import functools
import importlib

import torch


@functools.cache
def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except Exception:  # ImportError, or a CUDA/ABI mismatch raised while importing
        return False
    return True


def mamba_ssm_available() -> bool:
    """True when mamba_ssm's selective-scan kernel imports and a CUDA device is present."""
    return torch.cuda.is_available() and _importable("mamba_ssm.ops.selective_scan_interface")


def causal_conv1d_available() -> bool:
    """True when the causal-conv1d kernel (mamba_ssm's fused fast path needs it) imports."""
    return torch.cuda.is_available() and _importable("causal_conv1d")
