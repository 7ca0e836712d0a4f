"""Provenance columns: numerics flags, kernel versions, GPU clocks (never failing), SDPA kernel."""

from __future__ import annotations

import contextlib
import subprocess

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from gam_bench.measure import provenance
from gam_bench.models import registry


def test_numerics_follow_the_torch_flags(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    old = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")
        cols = provenance.numerics()
    finally:
        torch.set_float32_matmul_precision(old)
    assert cols["float32_matmul_precision"] == "high"
    assert cols["cudnn_benchmark"] is True
    assert set(cols) == {
        "float32_matmul_precision",
        "cuda_matmul_allow_tf32",
        "cudnn_enabled",
        "cudnn_benchmark",
        "cudnn_deterministic",
        "cudnn_allow_tf32",
    }


def test_kernel_versions_from_metadata_without_importing():
    import sys

    cols = provenance.kernel_versions()
    assert set(cols) == {"mamba_ssm_version", "causal_conv1d_version", "triton_version"}
    assert cols["mamba_ssm_version"] is None  # not installed here
    assert "mamba_ssm" not in sys.modules


def test_gpu_clocks_none_without_nvml_or_smi(monkeypatch):
    monkeypatch.setattr(provenance, "_nvml_query", lambda index: None)
    monkeypatch.setattr(provenance.shutil, "which", lambda name: None)
    assert set(provenance.gpu_clocks(0).values()) == {None}
    assert provenance.nvml_memory_info(0) is None


def test_gpu_clocks_from_nvidia_smi(monkeypatch):
    monkeypatch.setattr(provenance, "_nvml_query", lambda index: None)
    monkeypatch.setattr(provenance.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    seen = {}

    def fake_run(cmd, **kwargs):
        seen["cmd"], seen["timeout"] = cmd, kwargs["timeout"]
        return subprocess.CompletedProcess(cmd, 0, stdout="1980, 2619, 1980, [N/A], 81000, 81559\n")

    monkeypatch.setattr(provenance.subprocess, "run", fake_run)
    cols = provenance.gpu_clocks(0)
    assert cols == {
        "gpu_sm_clock_mhz": 1980.0,
        "gpu_mem_clock_mhz": 2619.0,
        "gpu_max_sm_clock_mhz": 1980.0,
        "gpu_power_limit_w": None,
    }
    assert seen["timeout"] <= 10 and "--id=0" in seen["cmd"]
    assert provenance.nvml_memory_info(0) == (81000 * 2**20, 81559 * 2**20)


def test_gpu_clocks_survive_a_hanging_smi(monkeypatch):
    monkeypatch.setattr(provenance, "_nvml_query", lambda index: None)
    monkeypatch.setattr(provenance.shutil, "which", lambda name: "/usr/bin/nvidia-smi")

    def hang(cmd, **kwargs):
        raise subprocess.TimeoutExpired(cmd, kwargs["timeout"])

    monkeypatch.setattr(provenance.subprocess, "run", hang)
    assert provenance.gpu_clocks(0)["gpu_sm_clock_mhz"] is None


def _attention(q):
    return F.scaled_dot_product_attention(q, q, q, is_causal=True)


def test_sdpa_kernel_on_cpu_is_the_cpu_flash_kernel():
    q = torch.randn(1, 2, 16, 8)
    with provenance.SDPAKernels() as k:
        _attention(q)
    assert k.kernels == "flash_cpu"


def test_sdpa_kernel_math_when_forced():
    q = torch.randn(1, 2, 16, 8)
    with sdpa_kernel(SDPBackend.MATH), provenance.SDPAKernels() as k:
        _attention(q)
    assert k.kernels == "math"


def test_sdpa_kernel_empty_without_sdpa():
    with provenance.SDPAKernels() as k:
        torch.randn(4, 4) @ torch.randn(4, 4)
    assert k.kernels == ""


@pytest.mark.parametrize(
    ("model", "dropout", "expected"),
    [
        ("transformer", 0.0, "flash_cpu"),
        ("transformer", 0.1, "math"),  # dropout in training sends CPU SDPA to the math kernel
        ("transformer-naive", 0.0, ""),
        ("gam", 0.0, "flash_cpu"),
    ],
)
def test_sdpa_kernel_of_model_blocks_fwd_bwd(model, dropout, expected):
    overrides = {"d_model": 16, "max_seq_len": 32, "dropout": dropout}
    if model.startswith("transformer"):
        overrides["n_heads"] = 2
    else:
        overrides["num_memory_slots"] = 8
    block = registry.build_block(model, **overrides)
    x = torch.randn(2, 32, 16, requires_grad=True)
    with provenance.SDPAKernels() as k:
        block(x).mean().backward()
    assert k.kernels == expected


def test_accelerator_provenance_cpu_has_no_clocks():
    row = provenance.accelerator_provenance(torch.device("cpu"))
    assert "gpu_sm_clock_mhz" not in row and "float32_matmul_precision" in row


def test_every_provenance_column_is_in_the_store():
    from gam_bench import store
    from gam_bench.measure import memory

    row = {
        **provenance.numerics(),
        **provenance.kernel_versions(),
        **provenance.gpu_clocks(0),
        **memory.device_memory_at_start(torch.device("cpu")),
        "sdpa_kernel": "",
        "backend_reason": "",
        "device_time_ms": None,
        "device_time_samples_ms": None,
    }
    assert set(row) <= set(store.columns())
    assert store.to_table([{**row, "status": "ok"}]).num_rows == 1


@pytest.mark.parametrize(("forced", "expected"), [(None, "flash_cpu"), (SDPBackend.MATH, "math")])
def test_sdpa_kernels_fed_by_the_counted_steps_mode_agree_with_their_own_mode(forced, expected):
    """dispatch=False: the counted step's TensorMemory passes every op on; one Python call per op."""
    from gam_bench.measure.counted_step import count_step

    q = torch.randn(1, 2, 16, 8)
    backend = lambda: sdpa_kernel(forced) if forced is not None else contextlib.nullcontext()  # noqa: E731
    with backend(), provenance.SDPAKernels(dispatch=False) as shared:
        counted = count_step(lambda: _attention(q), flops=False, device="cpu", observe=shared.observe)
    with backend(), provenance.SDPAKernels() as alone:
        _attention(q)
    assert shared.kernels == alone.kernels == expected and counted.peak_tensor_bytes > 0
    with provenance.SDPAKernels(dispatch=False) as unfed:
        _attention(q)
    assert unfed.kernels == "math"  # nothing fed it ops: an SDPA call with no fused op seen
