"""Mamba's selective scan on the CPU as fused kernels: the scan, its causal conv, the decode step.

Why this form. The torch scan (`selective_scan.chunked_selective_scan`) is thousands of small
ops a step (at 8k tokens: 320 bmm, ~850 mul, 2,816 addcmul_, ~14,700 slices), and the ops
around it (softplus, the D skip, the gate, the conv) run on transposed (B, E, L) views; on a
CPU its time goes to dispatch and memory traffic, not to the E*N multiply-adds of the
recurrence. Here (kernels/selective_scan.cpp) the recurrence runs sequentially over time with
SIMD lanes over channels, the state in registers: one pass forward, one backward (recomputing
each chunk's states), with delta's bias and softplus, the D skip and the silu(z) gate fused in;
and the causal depthwise conv + SiLU is a second kernel. Everything is time-major, (B, L, E) as
nn.Linear produces it, so the mixer (mamba.MambaMixer._fused_path) transposes and copies nothing.

How it is built. The kernels are plain C++ on raw pointers, without torch headers, so they
compile in about a second (a torch C++ extension takes minutes on a small machine) and do not
depend on torch's C++ ABI. The first use compiles them with $CXX (else g++, else c++) into
$GAM_BENCH_KERNEL_CACHE (default: the `kernels` folder of $GAM_BENCH_CACHE, else
~/.cache/gam-bench/kernels), never into the checkout; the file name carries a hash of the
source, the flags, the compiler's version and the CPU's flags (-march=native), so a changed
source or machine builds anew and every later process (each worker) loads the cached library.
$GAM_BENCH_CPU_SCAN_TARGET replaces the target flags (`-march=native`): the counting workers
(measure/valgrind.py) set `-march=x86-64-v3 -mno-fma` (AVX2 without FMA), because valgrind
3.19 cannot run AVX-512 (a native build on an AVX-512 CPU dies with SIGILL under it) and
runs each FMA lane through a slow helper; `build_label()` names the build a process loaded,
and a counted row records it (`instructions_build`). Timed steps always run the native build.
The write is atomic (a temporary file, then os.replace), so concurrent workers are safe.
`unavailable_reason()` is None when the kernels load, else why not (no compiler, a failed build
with the compiler's first error line, GAM_BENCH_CPU_SCAN=0); the first failure also warns once.
Mamba's `backend: auto` then runs the torch scan and says why in `backend_reason`.

How torch sees them. Ops in the `gam_bench` namespace (`torch.library.custom_op`):
`selective_scan_fwd` / `_bwd`, `conv_silu` / `_bwd` (their autograd formulas) and
`selective_scan_step`, each with a fake implementation: torch.compile traces through them
without a graph break, a dispatch mode (the tensor-counted step) sees a handful of ops, and
FlopCounterMode counts the formulas registered below, the matmul-like work the torch path's
ops count (scan forward 2 B L E N for ys = C . h, backward 8 B L E N; the conv as torch counts
its Conv1d), so a FLOP column does not depend on the backend. The scan runs in float32
(float64 for float64 inputs, through plain loops: that path is for gradcheck, not speed).
The kernels run on one thread whatever torch's thread count (the CPU suites time one thread);
the projections around them use torch's threads as before.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import register_flop_formula

SOURCE = Path(__file__).with_name("kernels") / "selective_scan.cpp"
FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC")
TARGET_ENV = "GAM_BENCH_CPU_SCAN_TARGET"  # target flags instead of -march=native (counting workers' build)
CACHE_ENV = "GAM_BENCH_KERNEL_CACHE"
SWITCH_ENV = "GAM_BENCH_CPU_SCAN"  # "0": do not build or use the kernel
BUILD_TIMEOUT_S = 300
# Steps per chunk: backward keeps a channel block's recomputed states and decays for a chunk
# (2 x K x N vectors: 64 KiB at N = 16) and the chunk's per-lane dB, dC sums in L2.
CHUNK = 32
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}


def kernel_cache_dir() -> Path:
    """$GAM_BENCH_KERNEL_CACHE, else $GAM_BENCH_CACHE/kernels, else ~/.cache/gam-bench/kernels."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    root = os.environ.get("GAM_BENCH_CACHE") or Path.home() / ".cache" / "gam-bench"
    return Path(root).expanduser() / "kernels"


def find_compiler() -> str | None:
    """$CXX if set (and found), else g++ or c++ on PATH; None when there is none."""
    names = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "c++"]
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def target() -> str:
    """The target flags the kernel is built with: $GAM_BENCH_CPU_SCAN_TARGET, else -march=native."""
    return os.environ.get(TARGET_ENV, "").strip() or "-march=native"


def flags() -> tuple[str, ...]:
    """The compiler flags: FLAGS with -march=native replaced by `target()`."""
    return tuple(part for flag in FLAGS for part in (target().split() if flag == "-march=native" else [flag]))


def _library_name(compiler: str) -> str:
    """selective_scan-<hash>.so; the hash covers source, flags, compiler version and CPU."""
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    key = "\n".join([SOURCE.read_text(), " ".join(flags()), version, platform.machine(), _cpu_flags()])
    return f"selective_scan-{hashlib.sha256(key.encode()).hexdigest()[:16]}.so"


def build(compiler: str, folder: Path) -> Path:
    """The compiled library in `folder`, compiling it first if it is not there. Raises
    RuntimeError with the compiler's first error line when the build fails."""
    target = folder / _library_name(compiler)
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".build-", suffix=".so")
    os.close(fd)
    try:
        cmd = [compiler, *flags(), "-o", tmp, str(SOURCE)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
        if done.returncode != 0:
            lines = [ln for ln in done.stderr.splitlines() if "error" in ln] or done.stderr.splitlines() or [""]
            raise RuntimeError(f"{Path(compiler).name} failed (exit {done.returncode}): {lines[0].strip()[:200]}")
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


@functools.cache
def _library() -> ctypes.CDLL | str:
    """The loaded kernel, or why it is not available (a str). Once per process."""
    if os.environ.get(SWITCH_ENV, "1") == "0":
        return f"{SWITCH_ENV}=0"
    compiler = find_compiler()
    if compiler is None:
        return "no C++ compiler ($CXX, g++ or c++ on PATH) to build the fused CPU scan"
    try:
        lib = ctypes.CDLL(str(build(compiler, kernel_cache_dir())))
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        return f"building the fused CPU scan failed: {exc}"[:300]
    for name in ("scan_forward", "scan_backward", "scan_step", "conv_silu_forward", "conv_silu_backward"):
        for suffix in _SUFFIX.values():
            getattr(lib, f"{name}_{suffix}").restype = None
    lib.scan_lanes_f32.restype = ctypes.c_int64
    _LOADED["label"] = f"selective_scan {target()}"
    return lib


_LOADED: dict[str, str] = {}  # "label": the build `_library` loaded (`build_label`)


# The answer of `unavailable_reason`, once known: a plain dict read, which torch.compile
# traces as a constant (it would trace into the functools.cache'd build otherwise).
_REASON: dict[str, str | None] = {}


def unavailable_reason() -> str | None:
    """None when the fused CPU scan loads here, else why not. A failure warns, once a process."""
    if "reason" not in _REASON:
        lib = _library()
        _REASON["reason"] = lib if isinstance(lib, str) else None
        if isinstance(lib, str):
            message = f"Mamba's fused CPU scan is unavailable, the slower torch scan runs: {lib}"
            warnings.warn(message, RuntimeWarning, stacklevel=2)
    return _REASON["reason"]


def build_label() -> str | None:
    """The build of the kernel this process loaded ("selective_scan -march=native"), None if none."""
    return _LOADED.get("label")


def reset() -> None:
    """Forget the loaded library and the reason (tests: a new cache folder, a missing compiler)."""
    _library.cache_clear()
    _REASON.clear()
    _LOADED.clear()


def available() -> bool:
    return unavailable_reason() is None


class _Args(ctypes.Structure):
    """kernels/selective_scan.cpp's ScanArgs, field for field."""

    _fields_ = [
        *((name, ctypes.c_void_p) for name in ("u", "dt", "A_t", "B", "C", "D", "bias", "z")),
        *((name, ctypes.c_int64 * 2) for name in ("su", "sdt", "sB", "sC", "sz")),
        *((name, ctypes.c_void_p) for name in ("out", "entry", "last", "gout")),
        *((name, ctypes.c_void_p) for name in ("gu", "gdt", "gA_t", "gB", "gC", "gD", "gbias", "gz")),
        *((name, ctypes.c_int64) for name in ("batch", "length", "dim", "n_state", "chunk", "softplus", "gate")),
    ]


def _loaded() -> ctypes.CDLL:
    lib = _library()
    if isinstance(lib, str):
        raise RuntimeError(f"the fused CPU scan is unavailable: {lib}")
    return lib


def lanes(dtype: torch.dtype) -> int:
    """Channels per vector in the kernel: the channel count is padded to a multiple of it."""
    return int(_loaded().scan_lanes_f32()) if dtype == torch.float32 else 1


def _padded(dim: int, dtype: torch.dtype) -> int:
    w = lanes(dtype)
    return -(-dim // w) * w


def _unpad(t: torch.Tensor, dim: int) -> torch.Tensor:
    """t (..., Dp) cut to (..., dim), contiguous either way (the fake implementations' layout)."""
    return t if t.shape[-1] == dim else t[..., :dim].contiguous()


def _time_major(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B, X, L) -> a (B, L, X') view with unit stride along X', X' = X zero-padded to `dim`
    (a copy only when the stride or the padding needs one)."""
    t = t.transpose(1, 2)  # (B, L, X)
    if t.shape[2] != dim:
        t = F.pad(t, (0, dim - t.shape[2]))
    return t if t.stride(2) == 1 else t.contiguous()


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _strides(t: torch.Tensor) -> ctypes.Array:
    return (ctypes.c_int64 * 2)(t.stride(0), t.stride(1))


def _check(*tensors: torch.Tensor) -> None:
    dtype = tensors[0].dtype
    for t in tensors:
        if t.device.type != "cpu" or t.dtype != dtype or dtype not in _SUFFIX:
            raise ValueError(
                f"the fused CPU scan takes CPU float32/float64 tensors of one dtype, got {t.dtype} {t.device}"
            )


class _Inputs:
    """The forward's inputs in the kernel's layout: u, dt, z (B, L, Dp), B, C (B, L, N),
    A_t (N, Dp), D and bias (Dp,), Dp = D padded to a multiple of the lanes."""

    def __init__(self, u, delta, A, B, C, D, z, bias):
        _check(u, delta, A, B, C, D, bias, *([z] if z is not None else []))
        self.batch, self.dim, self.length = u.shape
        self.n = A.shape[1]
        self.padded = _padded(self.dim, u.dtype)
        pad = self.padded - self.dim
        self.u, self.dt = _time_major(u, self.padded), _time_major(delta, self.padded)
        self.z = _time_major(z, self.padded) if z is not None else None
        self.B, self.C = _time_major(B, self.n), _time_major(C, self.n)
        self.A_t = F.pad(A.t(), (0, pad)).contiguous()  # (N, Dp)
        self.D, self.bias = (F.pad(t, (0, pad)).contiguous() for t in (D, bias))

    def args(self, chunk: int, softplus: bool) -> _Args:
        a = _Args()
        for name in ("u", "dt", "A_t", "B", "C", "D", "bias", "z"):
            setattr(a, name, _ptr(getattr(self, name)))
        a.su, a.sdt, a.sB, a.sC = (_strides(getattr(self, n)) for n in ("u", "dt", "B", "C"))
        a.sz = _strides(self.z) if self.z is not None else (ctypes.c_int64 * 2)(0, 0)
        a.batch, a.length, a.dim, a.n_state, a.chunk = self.batch, self.length, self.padded, self.n, chunk
        a.softplus, a.gate = int(softplus), int(self.z is not None)
        return a


def _run(name: str, dtype: torch.dtype, args: _Args) -> None:
    getattr(_loaded(), f"{name}_{_SUFFIX[dtype]}")(ctypes.byref(args))


def _n_chunks(length: int, chunk: int) -> int:
    return -(-length // chunk)


@torch.library.custom_op("gam_bench::selective_scan_fwd", mutates_args=())
def selective_scan_fwd(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor,
    z: torch.Tensor | None,
    delta_bias: torch.Tensor,
    softplus: bool,
    chunk: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The whole selective scan: u, delta, z (B, D, L); A (D, N); B, C (B, N, L); D,
    delta_bias (D,); z None: no gate. -> out (B, D, L) (a view of (B, L, D) memory), the state
    entering each chunk (B, n_chunks, N, Dp) and the state after the last step (B, D, N)."""
    x = _Inputs(u, delta, A, B, C, D, z, delta_bias)
    out = u.new_empty(x.batch, x.length, x.padded)  # (B, L, Dp)
    entry = u.new_empty(x.batch, _n_chunks(x.length, chunk), x.n, x.padded)
    last = u.new_empty(x.batch, x.n, x.padded)  # (B, N, Dp)
    args = x.args(chunk, softplus)
    args.out, args.entry, args.last = out.data_ptr(), entry.data_ptr(), last.data_ptr()
    _run("scan_forward", u.dtype, args)
    return _unpad(out, x.dim).transpose(1, 2), entry, last[..., : x.dim].transpose(1, 2).contiguous()


@selective_scan_fwd.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, softplus, chunk):
    batch, dim, length = u.shape
    n = A.shape[1]
    out = u.new_empty(batch, length, dim).transpose(1, 2)
    entry = u.new_empty(batch, _n_chunks(length, chunk), n, _padded(dim, u.dtype))
    return out, entry, u.new_empty(batch, dim, n)


@torch.library.custom_op("gam_bench::selective_scan_bwd", mutates_args=())
def selective_scan_bwd(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor,
    z: torch.Tensor | None,
    delta_bias: torch.Tensor,
    softplus: bool,
    chunk: int,
    entry: torch.Tensor,
    gout: torch.Tensor,
) -> tuple[
    torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor
]:
    """Gradients of `selective_scan_fwd`'s out for gout (B, D, L): (gu, gdelta, gA, gB, gC, gD,
    gz, gdelta_bias), gz zeros without a gate."""
    x = _Inputs(u, delta, A, B, C, D, z, delta_bias)
    gout = _time_major(gout.to(u.dtype), x.padded).contiguous()  # (B, L, Dp)
    g = {name: u.new_empty(x.batch, x.length, x.padded) for name in ("gu", "gdt", "gz")}  # (B, L, Dp)
    g["gz"].zero_()
    g.update(gB=u.new_empty(x.batch, x.length, x.n), gC=u.new_empty(x.batch, x.length, x.n))  # (B, L, N)
    g.update(gA_t=u.new_empty(x.n, x.padded), gD=u.new_empty(x.padded), gbias=u.new_empty(x.padded))
    args = x.args(chunk, softplus)
    args.entry, args.gout = entry.data_ptr(), gout.data_ptr()
    for name, t in g.items():
        setattr(args, name, t.data_ptr())
    _run("scan_backward", u.dtype, args)
    dim = x.dim
    per_step = (_unpad(g[name], dim).transpose(1, 2) for name in ("gu", "gdt"))  # (B, D, L) views
    gB, gC = (g[name].transpose(1, 2) for name in ("gB", "gC"))  # (B, N, L) views
    gz = _unpad(g["gz"], dim).transpose(1, 2)
    return *per_step, g["gA_t"][:, :dim].t().contiguous(), gB, gC, g["gD"][:dim], gz, g["gbias"][:dim]


@selective_scan_bwd.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, softplus, chunk, entry, gout):
    batch, dim, length = u.shape
    n = A.shape[1]
    per_step = [u.new_empty(batch, length, dim).transpose(1, 2) for _ in range(3)]
    gB, gC = (u.new_empty(batch, length, n).transpose(1, 2) for _ in range(2))
    return per_step[0], per_step[1], A.new_empty(dim, n), gB, gC, D.new_empty(dim), per_step[2], D.new_empty(dim)


def _setup_context(ctx, inputs, output) -> None:
    u, delta, A, B, C, D, z, delta_bias, softplus, chunk = inputs
    ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, output[1])
    ctx.softplus, ctx.chunk = softplus, chunk
    ctx.mark_non_differentiable(output[1], output[2])


def _backward(ctx, gout, _g_entry, _g_last):
    u, delta, A, B, C, D, z, delta_bias, entry = ctx.saved_tensors
    grads = selective_scan_bwd(u, delta, A, B, C, D, z, delta_bias, ctx.softplus, ctx.chunk, entry, gout)
    gu, gdelta, gA, gB, gC, gD, gz, gbias = grads
    return gu, gdelta, gA, gB, gC, gD, gz if z is not None else None, gbias, None, None


selective_scan_fwd.register_autograd(_backward, setup_context=_setup_context)


@torch.library.custom_op("gam_bench::selective_scan_step", mutates_args=())
def selective_scan_step(
    u: torch.Tensor,
    dt: torch.Tensor,
    dt_bias: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor,
    z: torch.Tensor,
    state: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One decode step: u, dt (no bias), z (B, E); dt_bias, D (E,); A (E, N); B, C (B, N);
    state (B, E, N) -> (y (B, E) = (C . h + D u) * silu(z), the new state h (B, E, N))."""
    _check(u, dt, dt_bias, A, B, C, D, z)
    u, dt, dt_bias, A, B, C, D, z = (t.contiguous() for t in (u, dt, dt_bias, A, B, C, D, z))
    h = state.to(u.dtype, copy=True).contiguous()  # (B, E, N); updated in place by the kernel
    y = torch.empty_like(u)
    batch, dim = u.shape
    fn = getattr(_loaded(), f"scan_step_{_SUFFIX[u.dtype]}")
    fn(
        *(ctypes.c_void_p(t.data_ptr()) for t in (u, dt, dt_bias, A, B, C, D, z, h, y)),
        *map(ctypes.c_int64, (batch, dim, A.shape[1])),
    )
    return y, h


@selective_scan_step.register_fake
def _(u, dt, dt_bias, A, B, C, D, z, state):
    return torch.empty_like(u), state.new_empty(state.shape, dtype=u.dtype)


@register_flop_formula(torch.ops.gam_bench.selective_scan_fwd)
def _fwd_flop(u_shape, delta_shape, A_shape, *args, out_shape=None, **kwargs) -> int:
    """ys = C . h: one multiply-add per (b, d, t, n), as the torch scan's matmul counts it."""
    batch, dim, length = u_shape
    return 2 * batch * dim * length * A_shape[1]


@register_flop_formula(torch.ops.gam_bench.selective_scan_bwd)
def _bwd_flop(u_shape, delta_shape, A_shape, *args, out_shape=None, **kwargs) -> int:
    """g . B, the dA term summed for gA, gB and gC: four, as the torch scan's matmuls count them."""
    batch, dim, length = u_shape
    return 8 * batch * dim * length * A_shape[1]


def _conv_inputs(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor):
    """x (B, L, E) -> (x time-major with unit channel stride, weight (E, 1, K) as (K, Ep), bias (Ep,), Ep)."""
    _check(x, weight, bias)
    dim = x.shape[2]
    padded = _padded(dim, x.dtype)
    if padded != dim:
        x = F.pad(x, (0, padded - dim))
    x = x if x.stride(2) == 1 else x.contiguous()
    w_t = F.pad(weight[:, 0, :].t(), (0, padded - dim)).contiguous()  # (K, Ep)
    return x, w_t, F.pad(bias, (0, padded - dim)).contiguous(), padded


@torch.library.custom_op("gam_bench::conv_silu", mutates_args=())
def conv_silu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """silu(causal depthwise conv): x (B, L, E), weight (E, 1, K), bias (E,) -> (B, L, E), as
    silu(Conv1d(E, E, K, groups=E, padding=K-1)(x.transpose(1, 2))[..., :L]).transpose(1, 2)."""
    batch, length, dim = x.shape
    xp, w_t, b, padded = _conv_inputs(x, weight, bias)
    u = x.new_empty(batch, length, padded)
    fn = getattr(_loaded(), f"conv_silu_forward_{_SUFFIX[x.dtype]}")
    fn(*_c(xp.data_ptr(), xp.stride(0), xp.stride(1), w_t.data_ptr(), b.data_ptr(), u.data_ptr()),
       *_c(batch, length, padded, w_t.shape[0]))  # fmt: skip
    return _unpad(u, dim)


@conv_silu.register_fake
def _(x, weight, bias):
    return x.new_empty(x.shape)


@torch.library.custom_op("gam_bench::conv_silu_bwd", mutates_args=())
def conv_silu_bwd(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, gu: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients (gx (B, L, E), gweight (E, 1, K), gbias (E,)) of conv_silu for gu (B, L, E)."""
    batch, length, dim = x.shape
    xp, w_t, b, padded = _conv_inputs(x, weight, bias)
    gu = gu.to(x.dtype)
    gu = (F.pad(gu, (0, padded - dim)) if padded != dim else gu).contiguous()  # F.pad copies even by 0
    gx, gw_t, gb = x.new_empty(batch, length, padded), torch.empty_like(w_t), torch.empty_like(b)
    fn = getattr(_loaded(), f"conv_silu_backward_{_SUFFIX[x.dtype]}")
    ptrs = (xp.data_ptr(), xp.stride(0), xp.stride(1), w_t.data_ptr(), b.data_ptr(), gu.data_ptr())
    fn(*_c(*ptrs, gx.data_ptr(), gw_t.data_ptr(), gb.data_ptr(), batch, length, padded, w_t.shape[0]))
    return gx[..., :dim].contiguous(), gw_t[:, :dim].t().unsqueeze(1).contiguous(), gb[:dim].contiguous()


@conv_silu_bwd.register_fake
def _(x, weight, bias, gu):
    return torch.empty_like(x), torch.empty_like(weight), torch.empty_like(bias)


def _conv_setup(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs)


def _conv_backward(ctx, gu):
    return conv_silu_bwd(*ctx.saved_tensors, gu)


conv_silu.register_autograd(_conv_backward, setup_context=_conv_setup)


@register_flop_formula(torch.ops.gam_bench.conv_silu)
def _conv_flop(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
    """One multiply-add per (b, output position, channel, tap), as torch counts the Conv1d it
    replaces (padding K-1: L+K-1 output positions before the slice to L)."""
    batch, length, dim = x_shape
    taps = w_shape[-1]
    return 2 * batch * (length + taps - 1) * dim * taps


@register_flop_formula(torch.ops.gam_bench.conv_silu_bwd)
def _conv_bwd_flop(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
    """The input and the weight gradient, one forward convolution each (measure/flops.py's rule)."""
    return 2 * _conv_flop(x_shape, w_shape)


def _c(*values: int) -> list:
    """ctypes arguments: every value is an address or a size, both int64."""
    return [ctypes.c_int64(v) for v in values]


def scan(u, delta, A, B, C, D, z, delta_bias, softplus: bool, chunk: int | None = None):
    """(out (B, D, L), last state (B, D, N)) of the whole selective scan (see selective_scan_fwd);
    chunk: steps per chunk (default CHUNK)."""
    out, _entry, last = selective_scan_fwd(u, delta, A, B, C, D, z, delta_bias, softplus, chunk or CHUNK)
    return out, last
