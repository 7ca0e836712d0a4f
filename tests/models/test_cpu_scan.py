"""The fused CPU selective scan (models/cpu_scan.py): parity with the sequential reference forward
and backward, its conv, decode step, build cache and the recorded fallback when it cannot build."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from zoo_reference import sequential_scan

from gam_bench.errors import UserError
from gam_bench.measure import valgrind
from gam_bench.models import backends, build, build_block, cpu_scan
from gam_bench.models.selective_scan import fused_cpu_selective_scan

pytestmark = pytest.mark.skipif(cpu_scan.unavailable_reason() is not None, reason="no C++ compiler here")

TOL = {torch.float64: (1e-10, 1e-10), torch.float32: (1e-5, 1e-5), torch.bfloat16: (2e-2, 5e-2)}
GRAD_TOL = {torch.float64: (1e-9, 1e-9), torch.float32: (1e-4, 1e-4)}


def _inputs(L, dtype=torch.float32, batch=2, dim=6, n=4, gate=True):
    g = torch.Generator().manual_seed(L * 31 + dim)
    r = lambda *s: torch.randn(*s, generator=g).to(dtype)  # noqa: E731
    x = dict(
        u=r(batch, dim, L),
        delta=r(batch, dim, L),
        A=(-torch.rand(dim, n, generator=g) * 4).to(dtype),
        B=r(batch, n, L),
        C=r(batch, n, L),
        D=r(dim),
        z=r(batch, dim, L),
        delta_bias=r(dim),
    )
    if not gate:
        del x["z"]
    return {k: v.requires_grad_() for k, v in x.items()}


# Lengths around the kernel's chunk (32) and none; dims padded to the 16 float lanes (6, 20)
# and not (16, 32); a state size that is not a power of two (5).
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize(("L", "dim", "n"), [(1, 6, 4), (31, 16, 4), (32, 6, 5), (33, 32, 16), (100, 20, 4)])
def test_fused_scan_equals_sequential_forward_and_backward(L, dim, n, dtype):
    inputs = _inputs(L, dtype, dim=dim, n=n)
    ref, ref_last = _sequential_with_state(inputs)
    out, last = fused_cpu_selective_scan(**inputs, delta_softplus=True, return_last_state=True)
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(out, ref, rtol=rtol, atol=atol)
    torch.testing.assert_close(last, ref_last, rtol=rtol, atol=atol)
    g = torch.randn_like(ref)
    grads_ref = torch.autograd.grad(ref, list(inputs.values()), g)
    grads_out = torch.autograd.grad(out, list(inputs.values()), g)
    rtol, atol = GRAD_TOL[dtype]
    for key, a, b in zip(inputs, grads_out, grads_ref):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=key)


def _sequential_with_state(inputs):
    """The reference output, and its last state by a second sequential pass (no gradient)."""
    ref = sequential_scan(**inputs, delta_softplus=True)
    with torch.no_grad():
        delta = F.softplus(inputs["delta"].double() + inputs["delta_bias"].double()[:, None])  # (B, D, L)
        h = torch.zeros(*inputs["u"].shape[:2], inputs["A"].shape[1], dtype=torch.float64)  # (B, D, N)
        for t in range(delta.shape[-1]):
            dt = delta[..., t, None]  # (B, D, 1)
            h = (
                torch.exp(dt * inputs["A"].double()) * h
                + dt * inputs["u"].double()[..., t, None] * (inputs["B"].double()[:, None, :, t])
            )
    return ref, h.to(torch.promote_types(inputs["u"].dtype, torch.float32))


@pytest.mark.parametrize("softplus", [True, False])
def test_fused_scan_without_gate_or_softplus(softplus):
    inputs = _inputs(40, gate=False)
    if not softplus:  # delta itself must be positive (a decay), as softplus makes it
        inputs["delta"] = inputs["delta"].detach().abs().requires_grad_()
        inputs["delta_bias"] = inputs["delta_bias"].detach().abs().requires_grad_()
    ref = sequential_scan(**inputs, delta_softplus=softplus)
    out = fused_cpu_selective_scan(**inputs, delta_softplus=softplus)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(ref)
    for key, a, b in zip(inputs, torch.autograd.grad(out, list(inputs.values()), g),
                         torch.autograd.grad(ref, list(inputs.values()), g)):  # fmt: skip
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4, msg=key)


def test_fused_scan_bfloat16_inputs_compute_in_float32():
    inputs = {k: v.detach() for k, v in _inputs(45, torch.bfloat16, dim=16).items()}
    out = fused_cpu_selective_scan(**inputs, delta_softplus=True)
    ref = sequential_scan(**inputs, delta_softplus=True)
    assert out.dtype == torch.bfloat16
    rtol, atol = TOL[torch.bfloat16]
    torch.testing.assert_close(out, ref, rtol=rtol, atol=atol)


def test_fused_scan_gradcheck():
    inputs = _inputs(11, torch.float64, dim=3, n=2)
    args = [inputs[k] for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")]

    def fn(*a):
        return cpu_scan.selective_scan_fwd(*a, True, 4)[0]

    assert torch.autograd.gradcheck(fn, args)


def test_fused_scan_is_safe_with_strong_decay():
    inputs = {k: v.detach() for k, v in _inputs(80, dim=16).items()}
    inputs["delta_bias"] = torch.full_like(inputs["delta_bias"], 30.0)  # delta * A down to -120 per step
    inputs["A"] = torch.full_like(inputs["A"], -4.0)
    out = fused_cpu_selective_scan(**inputs, delta_softplus=True)
    assert out.isfinite().all()
    torch.testing.assert_close(out, sequential_scan(**inputs, delta_softplus=True), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dim", [6, 16])
def test_conv_silu_equals_torch_conv(dim):
    x = torch.randn(2, 19, dim, dtype=torch.float64, requires_grad=True)  # (B, L, E)
    conv = torch.nn.Conv1d(dim, dim, 4, groups=dim, padding=3).double()
    ref = F.silu(conv(x.transpose(1, 2))[..., :19]).transpose(1, 2)
    out = cpu_scan.conv_silu(x, conv.weight, conv.bias)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(ref)
    params = [x, conv.weight, conv.bias]
    for a, b in zip(torch.autograd.grad(out, params, g), torch.autograd.grad(ref, params, g)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name", ["mamba", "mamba-paper"])
def test_cpu_fused_model_equals_torch_model_forward_and_backward(name, dtype, tiny):
    torch_model = build(name, **tiny(name, backend="torch")).to(dtype)
    fused = build(name, **tiny(name, backend="cpu-fused")).to(dtype)
    fused.load_state_dict(torch_model.state_dict())
    assert (torch_model.backend, fused.backend) == ("torch-chunked-scan", "cpu-fused-scan")
    idx = torch.randint(0, 97, (2, 45))  # not a multiple of either scan's chunk
    a, b = torch_model(idx), fused(idx)
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(b, a, rtol=rtol, atol=atol)
    a.square().mean().backward()
    b.square().mean().backward()
    rtol, atol = GRAD_TOL[dtype]
    for (key, p), q in zip(torch_model.named_parameters(), fused.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=rtol * 10, atol=atol * 10, msg=key)


def test_cpu_fused_block_under_bfloat16_autocast_matches_torch(tiny):
    torch_block = build_block("mamba", **tiny("mamba", backend="torch"))
    fused = build_block("mamba", **tiny("mamba", backend="cpu-fused"))
    fused.load_state_dict(torch_block.state_dict())
    x = torch.randn(2, 40, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = torch_block(x), fused(x)
    rtol, atol = TOL[torch.bfloat16]
    torch.testing.assert_close(b.float(), a.float(), rtol=rtol, atol=atol)
    b.float().square().mean().backward()
    assert all(p.grad is not None and p.grad.isfinite().all() for p in fused.parameters())


@pytest.mark.parametrize("T", [1, 29, 37])
@pytest.mark.parametrize("backend", ["torch", "cpu-fused"])
def test_mamba_decode_equals_forward_on_both_cpu_backends(backend, T, tiny):
    model = build("mamba", **tiny("mamba", backend=backend)).eval()
    assert model.decode_backend == f"{backend}-step"
    idx = torch.randint(0, 97, (2, T + 6))
    with torch.no_grad():
        full = model(idx)
        out, state = model.prefill(idx[:, :T])
        outs = [out]
        for t in range(T, T + 6):
            step, state = model.decode(idx[:, t : t + 1], state)
            outs.append(step)
    torch.testing.assert_close(torch.cat(outs, dim=1), full, rtol=1e-4, atol=1e-5)


def test_fused_step_equals_torch_step(tiny):
    model = build_block("mamba-paper", **tiny("mamba", backend="cpu-fused")).eval()
    x = torch.randn(3, 1, 32)
    with torch.no_grad():
        _, state = model.prefill(torch.randn(3, 5, 32))
        y_fused, s_fused = model.decode(x, state)
        model.requested = "torch"
        y_torch, s_torch = model.decode(x, state)
    torch.testing.assert_close(y_fused, y_torch)
    torch.testing.assert_close(s_fused.ssm, s_torch.ssm)


def test_fused_counted_step_dispatches_far_fewer_ops(tiny):
    """The tensor-counted step pays per dispatched op: the fused scan is a few ops, not thousands."""
    from torch.utils._python_dispatch import TorchDispatchMode

    counts = {}
    for backend in ("torch", "cpu-fused"):
        block = build_block("mamba", **tiny("mamba", backend=backend, d_state=16))
        x = torch.randn(1, 512, 32, requires_grad=True)

        class Count(TorchDispatchMode):
            n = 0

            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                Count.n += 1
                return func(*args, **(kwargs or {}))

        with Count():
            block(x).mean().backward()
        counts[backend] = Count.n
    assert counts["cpu-fused"] * 10 < counts["torch"], counts


def test_flop_count_does_not_depend_on_the_scan_backend(tiny):
    from gam_bench.measure.flops import count_flops

    flops = {}
    for backend in ("torch", "cpu-fused"):
        block = build_block("mamba", **tiny("mamba", backend=backend))
        x = torch.randn(2, 40, 32, requires_grad=True)
        flops[backend] = count_flops(lambda b=block, x=x: b(x).mean().backward())
    assert flops["cpu-fused"] == flops["torch"] > 0


def test_torch_compile_traces_the_fused_ops_without_a_graph_break(tiny):
    block = build_block("mamba", **tiny("mamba", backend="cpu-fused")).eval()
    x = torch.randn(2, 20, 32)
    compiled = torch.compile(block, backend="eager", fullgraph=True)  # fullgraph: a break would raise
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), block(x))
    torch._dynamo.reset()


# --- build, cache and fallback -------------------------------------------------------------


@pytest.fixture
def fresh_library(monkeypatch, tmp_path):
    """A clean kernel cache folder and no loaded library; restored afterwards."""
    monkeypatch.setenv(cpu_scan.CACHE_ENV, str(tmp_path / "kernels"))
    cpu_scan.reset()
    yield tmp_path / "kernels"
    cpu_scan.reset()


def test_the_build_is_cached_outside_the_checkout(fresh_library):
    assert cpu_scan.unavailable_reason() is None
    (built,) = fresh_library.glob("selective_scan-*.so")
    stamp = built.stat().st_mtime_ns
    cpu_scan.reset()  # a new process, as far as the cache can tell
    assert cpu_scan.unavailable_reason() is None
    assert [p.name for p in fresh_library.iterdir()] == [built.name] and built.stat().st_mtime_ns == stamp
    repo = Path(__file__).resolve().parents[2]
    assert not list(repo.glob("**/selective_scan-*.so"))


def test_the_cache_folder_defaults_under_gam_bench_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(cpu_scan.CACHE_ENV, raising=False)
    monkeypatch.setenv("GAM_BENCH_CACHE", str(tmp_path))
    assert cpu_scan.kernel_cache_dir() == tmp_path / "kernels"
    monkeypatch.delenv("GAM_BENCH_CACHE")
    assert cpu_scan.kernel_cache_dir() == Path.home() / ".cache" / "gam-bench" / "kernels"


def _without_compiler(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler")
    monkeypatch.setattr(cpu_scan.shutil, "which", lambda name: None)


def test_a_missing_compiler_is_a_recorded_reason_and_a_warning(fresh_library, monkeypatch, tiny):
    _without_compiler(monkeypatch)
    with pytest.warns(RuntimeWarning, match="fused CPU scan is unavailable.*no C\\+\\+ compiler"):
        reason = cpu_scan.unavailable_reason()
    assert "no C++ compiler" in reason
    model = build("mamba", **tiny("mamba", backend="auto"))
    assert model.backend == "torch-chunked-scan"
    assert backends.backend_reason(model) == f"torch-chunked-scan: inputs on cpu, fused CPU scan unavailable ({reason})"
    assert model.decode_backend == "torch-step"
    with pytest.raises(UserError, match="backend='cpu-fused' is not available.*no C\\+\\+ compiler"):
        build("mamba", **tiny("mamba", backend="cpu-fused"))


def test_a_failed_build_keeps_the_compilers_error(fresh_library, monkeypatch, tmp_path):
    bad = tmp_path / "bad.cpp"
    bad.write_text("this is not C++\n")
    monkeypatch.setattr(cpu_scan, "SOURCE", bad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reason = cpu_scan.unavailable_reason()
    assert reason.startswith("building the fused CPU scan failed:") and "error" in reason
    assert not list(fresh_library.glob("*.so")) and not list(fresh_library.glob(".build-*"))


def test_the_switch_turns_the_kernel_off(fresh_library, monkeypatch, tiny):
    monkeypatch.setenv(cpu_scan.SWITCH_ENV, "0")
    with pytest.warns(RuntimeWarning):
        assert cpu_scan.unavailable_reason() == f"{cpu_scan.SWITCH_ENV}=0"
    assert build("mamba", **tiny("mamba")).backend == "torch-chunked-scan"


def test_a_fresh_process_loads_the_cached_library(fresh_library):
    """Every worker after the first loads the build: a second process compiles nothing."""
    assert cpu_scan.unavailable_reason() is None
    code = (
        "import subprocess as s\n"
        "import gam_bench.models.cpu_scan as c\n"
        "real = s.run\n"
        "def run(cmd, **k):\n"
        "    assert '-o' not in cmd, 'compiled again'\n"
        "    return real(cmd, **k)\n"
        "s.run = run\n"
        "assert c.unavailable_reason() is None\n"
    )
    env = {**os.environ, cpu_scan.CACHE_ENV: str(fresh_library)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("dim", [6, 16])  # padded to the 16 lanes, and not
def test_custom_ops_pass_torch_library_opcheck(dim):
    """Schema, fake implementations (shapes and strides) and autograd registration agree with the kernels."""
    x = _inputs(9, dim=dim)
    args = [x[k] for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")]
    torch.library.opcheck(cpu_scan.selective_scan_fwd, (*args, True, 4))
    conv = torch.nn.Conv1d(dim, dim, 4, groups=dim, padding=3)
    xs = torch.randn(2, 9, dim, requires_grad=True)
    torch.library.opcheck(cpu_scan.conv_silu, (xs, conv.weight, conv.bias))


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.uname().machine != "x86_64", reason="x86-64 only")
def test_the_counting_build_has_no_avx512_and_computes_what_the_native_build_does(fresh_library, monkeypatch):
    """Counting workers (measure/valgrind.py) build for x86-64-v3 without FMA, which valgrind 3.19
    runs fast (it dies with SIGILL on AVX-512 and emulates FMA slowly): a build of its own, named
    by `build_label`, with the native build's results."""
    inputs = _inputs(40, dim=20, n=4)
    assert cpu_scan.unavailable_reason() is None
    assert cpu_scan.build_label() == "selective_scan -march=native"
    native = fused_cpu_selective_scan(**inputs, delta_softplus=True)
    cpu_scan.reset()
    assert cpu_scan.TARGET_ENV == valgrind.SCAN_TARGET_ENV  # the variable the counting launcher sets
    monkeypatch.setenv(cpu_scan.TARGET_ENV, valgrind.COUNTING_TARGET)
    assert cpu_scan.build_label() is None  # nothing loaded yet in this "process"
    assert cpu_scan.unavailable_reason() is None
    assert cpu_scan.build_label() == "selective_scan -march=x86-64-v3 -mno-fma"
    torch.testing.assert_close(fused_cpu_selective_scan(**inputs, delta_softplus=True), native, rtol=1e-6, atol=1e-6)
    builds = sorted(fresh_library.glob("selective_scan-*.so"), key=lambda p: p.stat().st_mtime_ns)
    assert len(builds) == 2  # the native build is kept for the timed path
    objdump = shutil.which("objdump")
    if objdump:
        listing = [subprocess.run([objdump, "-d", str(p)], capture_output=True, text=True).stdout for p in builds]
        assert "zmm" not in listing[1] and "%ymm" in listing[1]  # AVX2 registers, no AVX-512 ones
        assert "vfmadd" not in listing[1]  # nor FMA
