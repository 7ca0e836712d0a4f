"""Provenance of a row measured on an accelerator: the numerics settings and kernels behind it.

- `numerics()`: float32 matmul precision (TF32) and the cuDNN flags, read from torch.backends;
- `kernel_versions()`: mamba_ssm, causal_conv1d and triton versions from package metadata
  (importlib.metadata: nothing is imported, so no CUDA library is loaded);
- `gpu_clocks(index)`: SM / memory clocks and the power limit at cell start, through NVML
  (pynvml) when it imports, else `nvidia-smi --query-gpu` (short timeout), else None: never
  fails and never creates a CUDA context;
- `SDPAKernels`: which scaled-dot-product-attention kernel actually ran (flash, efficient,
  cudnn, flash_cpu, math), recorded from the aten ops dispatched during one (untimed) step.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from gam_bench.measure.eager_mode import EagerDispatchMode

_KERNEL_PACKAGES = {
    "mamba_ssm_version": "mamba-ssm",
    "causal_conv1d_version": "causal-conv1d",
    "triton_version": "triton",
}
_SMI_FIELDS = ("clocks.sm", "clocks.mem", "clocks.max.sm", "power.limit", "memory.free", "memory.total")
_SMI_TIMEOUT_S = 5.0

# The aten op each SDPA backend dispatches to (math decomposes into bmm/softmax: no op of its own).
SDPA_OPS = {
    "_scaled_dot_product_flash_attention": "flash",
    "_scaled_dot_product_efficient_attention": "efficient",
    "_scaled_dot_product_cudnn_attention": "cudnn",
    "_scaled_dot_product_flash_attention_for_cpu": "flash_cpu",
    "_scaled_dot_product_fused_attention_overrideable": "overrideable",
}


def numerics() -> dict[str, Any]:
    """The `float32_matmul_precision`, `cuda_matmul_allow_tf32` and `cudnn_*` columns."""
    cudnn = torch.backends.cudnn
    return {
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cuda_matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "cudnn_enabled": bool(cudnn.enabled),
        "cudnn_benchmark": bool(cudnn.benchmark),
        "cudnn_deterministic": bool(cudnn.deterministic),
        "cudnn_allow_tf32": bool(cudnn.allow_tf32),
    }


def kernel_versions() -> dict[str, str | None]:
    """Installed versions of the optional kernel packages (None where not installed)."""
    out: dict[str, str | None] = {}
    for column, package in _KERNEL_PACKAGES.items():
        try:
            out[column] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[column] = None
    return out


def _nvml_query(index: int) -> dict[str, float] | None:
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            return {
                "clocks.sm": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
                "clocks.mem": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM),
                "clocks.max.sm": pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM),
                "power.limit": pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0,  # mW -> W
                "memory.free": mem.free / 2**20,  # MiB, as nvidia-smi
                "memory.total": mem.total / 2**20,
            }
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - provenance is best effort: a missing driver call is None
        return None


def _parse_smi(text: str) -> dict[str, float | None]:
    values = [v.strip() for v in text.strip().splitlines()[0].split(",")]
    out: dict[str, float | None] = {}
    for name, value in zip(_SMI_FIELDS, values):
        try:
            out[name] = float(value)
        except ValueError:  # "[N/A]", "[Not Supported]"
            out[name] = None
    return out


def _smi_query(index: int) -> dict[str, float | None] | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    cmd = [exe, f"--query-gpu={','.join(_SMI_FIELDS)}", "--format=csv,noheader,nounits", f"--id={index}"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=_SMI_TIMEOUT_S, check=True)
        return _parse_smi(done.stdout)
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def _gpu_query(index: int) -> dict[str, float | None] | None:
    return _nvml_query(index) or _smi_query(index)


def gpu_clocks(index: int = 0) -> dict[str, float | None]:
    """The `gpu_sm_clock_mhz`, `gpu_mem_clock_mhz`, `gpu_max_sm_clock_mhz` and `gpu_power_limit_w`
    columns for NVIDIA GPU `index` (NVML numbering), all None where they cannot be read."""
    q = _gpu_query(index) or {}
    return {
        "gpu_sm_clock_mhz": q.get("clocks.sm"),
        "gpu_mem_clock_mhz": q.get("clocks.mem"),
        "gpu_max_sm_clock_mhz": q.get("clocks.max.sm"),
        "gpu_power_limit_w": q.get("power.limit"),
    }


def nvml_memory_info(index: int = 0) -> tuple[int, int] | None:
    """(free, total) bytes of NVIDIA GPU `index` without a CUDA context, or None if unreadable."""
    q = _gpu_query(index)
    if not q or q.get("memory.free") is None or q.get("memory.total") is None:
        return None
    return int(q["memory.free"] * 2**20), int(q["memory.total"] * 2**20)


def accelerator_provenance(device: torch.device) -> dict[str, Any]:
    """All provenance columns known at cell start (kernel versions and numerics on every device;
    clocks only for CUDA devices)."""
    row: dict[str, Any] = {**numerics(), **kernel_versions()}
    if device.type == "cuda":
        row.update(gpu_clocks(device.index if device.index is not None else 0))
    return row


class _SDPACalls(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.nn.functional.scaled_dot_product_attention:
            self.calls += 1
        return func(*args, **(kwargs or {}))


class _SDPAOps(EagerDispatchMode):
    """The fused SDPA kernels among the dispatched ops (`see` can also be fed by another mode)."""

    def __init__(self) -> None:
        super().__init__()
        self.kernels: set[str] = set()
        self.fused_calls = 0

    def see(self, func) -> None:
        name = func.overloadpacket.__name__
        if name in SDPA_OPS:
            self.kernels.add(SDPA_OPS[name])
            self.fused_calls += 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.see(func)
        return func(*args, **(kwargs or {}))


class SDPAKernels:
    """`with SDPAKernels() as k: step()`, then `k.kernels`: the SDPA kernels that ran, sorted and
    comma-joined (`sdpa_kernel` column): "flash", "efficient", "cudnn", "flash_cpu", "math"
    (an SDPA call that dispatched no fused kernel's op), or "" when SDPA never ran.
    Backward ops are not looked at: they follow the forward's kernel.

    dispatch=False: no dispatch mode of its own; another active mode must pass every op to
    `observe` (the counted step's TensorMemory does: one Python call per op, not two)."""

    def __init__(self, dispatch: bool = True) -> None:
        self._dispatch = dispatch
        self._calls, self._ops = _SDPACalls(), _SDPAOps()
        self.observe = self._ops.see

    def __enter__(self) -> SDPAKernels:
        self._calls.__enter__()
        if self._dispatch:
            self._ops.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._dispatch:
            self._ops.__exit__(*exc)
        self._calls.__exit__(*exc)

    @property
    def kernels(self) -> str:
        found = set(self._ops.kernels)
        if self._calls.calls > self._ops.fused_calls:
            found.add("math")
        return ",".join(sorted(found))
