"""Real CUDA runs of the paths no CPU test can execute (skipped without CUDA; marker cuda)."""

from __future__ import annotations

import os
import textwrap

import pytest
import torch

from gam_bench.models import backends, registry

TOL = {torch.float32: 2e-4, torch.bfloat16: 5e-2, torch.float16: 1e-2}


@pytest.mark.parametrize("slots", [512, 513, 33])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
def test_fused_gam_matches_reference_fwd_bwd(slots, dtype):
    torch.manual_seed(0)
    kw = {"d_model": 64, "num_memory_slots": slots, "dropout": 0.0, "max_seq_len": 256}
    ref = registry.build_block("gam", impl="reference", **kw).cuda()
    fused = registry.build_block("gam", impl="fused", **kw).cuda()
    fused.load_state_dict(ref.state_dict())
    x = torch.randn(2, 256, 64, device="cuda")  # (B, T, D)
    outs, grads = [], []
    for block in (ref, fused):
        xi = x.clone().requires_grad_(True)
        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            y = block(xi)  # (B, T, D)
        y.float().square().mean().backward()
        outs.append(y.float())
        grads.append([xi.grad, block.memory_bank.grad, block.gate.weight.grad])
    tol = TOL[dtype]
    torch.testing.assert_close(outs[1], outs[0], atol=tol, rtol=tol)
    for g_fused, g_ref in zip(grads[1], grads[0]):
        torch.testing.assert_close(g_fused, g_ref, atol=tol, rtol=tol * 10)


def test_mamba_ssm_matches_torch_backend_over_several_chunks():
    available, path, reason = backends.mamba_backend_status()
    if not available:
        pytest.skip(f"mamba-ssm unavailable: {reason}")
    torch.manual_seed(0)
    kw = {"d_model": 32, "dropout": 0.0}
    kernel = registry.build_block("mamba", backend="mamba-ssm", **kw).cuda()
    ref = registry.build_block("mamba", backend="torch", **kw).cuda()
    ref.load_state_dict(kernel.state_dict())
    x = torch.randn(2, 1000, 32, device="cuda")  # (B, T, D): several chunks of the torch scan
    results = []
    for block in (kernel, ref):
        xi = x.clone().requires_grad_(True)
        y = block(xi)
        y.square().mean().backward()
        results.append((y, xi.grad, block.mixer.A_log.grad))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=2e-3, rtol=2e-3)
    assert path in (backends.MAMBA_SSM_FUSED, backends.MAMBA_SSM_SCAN)


def _run(tmp_path, body: str):
    from gam_bench import store
    from gam_bench.runner.runner import run_suite

    suite = tmp_path / "suite.yaml"
    suite.write_text("name: cuda-test\nplugins: [cuda_models]\n" + textwrap.dedent(body))
    folder = run_suite(suite, out=tmp_path / "results", progress=False, report=False)
    return store.load(folder)


def test_cuda_oom_becomes_a_row_and_the_next_cell_runs(tmp_path):
    df = _run(
        tmp_path,
        """\
        device: cuda
        models: [test-cuda-hog, gam]
        axes: {seq_len: [16], batch_size: 1, d_model: 16}
        level: block
        mode: forward
        measure: {warmup: 0, repeats: 1, flops: false}
        limits: {timeout_s: 120, mem_cap_gb: 2}
        """,
    )
    status = dict(zip(df["model"], df["status"]))
    assert status == {"test-cuda-hog": "oom", "gam": "ok"}, df[["model", "status", "error"]]


def test_cpu_cell_on_a_gpu_machine_creates_no_cuda_context(tmp_path):
    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    df = _run(
        tmp_path,
        """\
        device: cpu
        threads: 1
        models: [test-cuda-context]
        axes: {seq_len: [16], batch_size: 1}
        level: block
        mode: forward_backward
        measure: {warmup: 1, repeats: 2, flops: true}
        """,
    )
    assert df["status"].tolist() == ["ok"], df[["status", "error"]].to_dict("records")
    assert df["backend"].tolist() == ["cuda_initialized=False"]
