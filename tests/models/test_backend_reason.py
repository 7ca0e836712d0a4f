"""mamba-ssm detection keeps the import error's reason and names the two mamba-ssm paths apart."""

from __future__ import annotations

import importlib

import pytest
import torch

from gam_bench.models import backends, registry


@pytest.fixture(autouse=True)
def _fresh_cache():
    backends.import_error.cache_clear()
    yield
    backends.import_error.cache_clear()


def _fake_imports(monkeypatch, failures: dict[str, Exception]):
    real = importlib.import_module

    def fake(name, *args):
        for prefix, exc in failures.items():
            if name.startswith(prefix):
                raise exc
        if name.startswith(("mamba_ssm", "causal_conv1d")):
            return object()
        return real(name, *args)

    monkeypatch.setattr(backends.importlib, "import_module", fake)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def test_broken_mamba_ssm_keeps_its_reason(monkeypatch):
    _fake_imports(monkeypatch, {"mamba_ssm": ImportError("selective_scan_cuda.so: undefined symbol: _ZN3c10")})
    available, path, reason = backends.mamba_backend_status()
    assert not available and path == "torch-chunked-scan"
    assert "undefined symbol" in reason and "ImportError" in reason


def test_fused_path_needs_causal_conv1d(monkeypatch):
    _fake_imports(monkeypatch, {"causal_conv1d": OSError("libcudart.so.12: cannot open shared object file")})
    available, path, reason = backends.mamba_backend_status()
    assert available and path == backends.MAMBA_SSM_SCAN
    assert "mamba_inner_fn" in reason and "libcudart" in reason


def test_both_kernels_give_the_fused_path(monkeypatch):
    _fake_imports(monkeypatch, {})
    assert backends.mamba_backend_status() == (True, backends.MAMBA_SSM_FUSED, "")


def test_no_cuda_is_a_reason():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    available, path, reason = backends.mamba_backend_status()
    assert not available and "no CUDA device" in reason


def test_mamba_model_records_its_backend_reason():
    model = registry.build("mamba", vocab_size=31, d_model=16, n_layers=1, backend="auto")
    from gam_bench.models import cpu_scan

    if cpu_scan.available():
        assert backends.backend_reason(model) == "cpu-fused-scan: inputs on cpu (mamba-ssm kernels are CUDA-only)"
    else:  # no compiler here: the torch scan, and why
        assert backends.backend_reason(model).startswith("torch-chunked-scan: inputs on cpu, fused CPU scan")
    model = registry.build("mamba", vocab_size=31, d_model=16, n_layers=1, backend="torch")
    assert "requested" in backends.backend_reason(model)
    assert backends.backend_reason(registry.build_block("gam", d_model=16, num_memory_slots=4)) == ""
