"""Mamba's selective scan: a pure-PyTorch chunked scan, and dispatch to mamba_ssm's kernels.

The recurrence, per batch b, channel d and state n (as in mamba_ssm's `selective_scan_ref`):

    h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t        h_{-1} = 0
    y_t = sum_n C_t[n] * h_t[n]  (+ D * u_t)  (* silu(z_t))

`chunked_selective_scan` walks the sequence in chunks of `chunk_size` steps (a Python loop
over chunks, never over time steps). Inside a chunk the linear recurrence is solved by a
work-efficient odd-even parallel scan: log2(chunk) levels of fused in-place `addcmul_`/`mul_`
on strided views, about 3 passes over the chunk in all, any length. It only ever multiplies
decay factors exp(delta * A) <= 1 together, so nothing overflows (unlike the cumsum/exp
trick, which divides by products of decays). The (B, L, D, N) state tensor is never
materialised for the whole sequence: the autograd Function keeps only the state entering
each chunk and recomputes a chunk's states in backward, like mamba_ssm's fused kernel.
Nothing is padded: the last chunk is simply shorter, so timing curves are not distorted.
Under torch.compile the scan stays eager (`_scan`: a graph break).

`fused_cpu_selective_scan` has the same contract on the fused CPU kernels (models/cpu_scan.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

# Steps per chunk. The work per step does not grow with the chunk (odd-even scan), so the
# size trades Python/launch overhead against the chunk's (B, l, D, N) working set; fewer
# chunks also mean fewer ops for the tensor-counted step's dispatch mode. 128 was the fastest
# of 32/64/128 on the CPU (docs/results/measured.md, "The Mamba torch scan"); accelerators use
# it too (not measured there: longer chunks mean fewer kernel launches).
CHUNK_SIZE = {"cpu": 128}
DEFAULT_ACCELERATOR_CHUNK_SIZE = 128


def chunked_selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    chunk_size: int | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Same contract as mamba_ssm's `selective_scan_fn` (real A, input-dependent B and C).

    u, delta, z: (B, D, L); A: (D, N); B, C: (B, N, L); D, delta_bias: (D,). Returns (B, D, L)
    in u's dtype; the scan itself runs in float32 (float64 if the inputs are float64).
    return_last_state: also return the state after the last step, h_{L-1} (B, D, N), in the
    scan's dtype (no gradient flows through it), as mamba_ssm does: (y, last_state).
    chunk_size: steps per chunk (default: by device, see CHUNK_SIZE).
    """
    if chunk_size is None:
        chunk_size = CHUNK_SIZE.get(u.device.type, DEFAULT_ACCELERATOR_CHUNK_SIZE)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    dtype = u.dtype
    compute = torch.promote_types(dtype, torch.float32)
    u32, delta32 = u.to(compute), delta.to(compute)
    if delta_bias is not None:
        delta32 = delta32 + delta_bias.to(compute)[:, None]
    if delta_softplus:
        delta32 = F.softplus(delta32)
    with torch.autocast(u.device.type, enabled=False):  # the scan stays in fp32 under autocast
        A32, B32, C32 = A.to(compute), B.to(compute), C.to(compute)
        y, last_state = _scan(u32, delta32, A32, B32, C32, chunk_size)
    if D is not None:
        y = y + u32 * D.to(compute)[:, None]
    if z is not None:
        y = y * F.silu(z.to(compute))
    return (y.to(dtype), last_state) if return_last_state else y.to(dtype)


def fused_cpu_selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """`chunked_selective_scan`'s contract in one fused CPU kernel: delta's bias and softplus,
    the scan, the D skip and the silu(z) gate (gam_bench.models.cpu_scan; it must be available:
    `cpu_scan.unavailable_reason()` is None). Runs in float32 (float64 for float64 inputs)."""
    from gam_bench.models import cpu_scan

    dtype = u.dtype
    compute = torch.promote_types(dtype, torch.float32)
    dim = u.shape[1]
    D = D.to(compute) if D is not None else u.new_zeros(dim, dtype=compute)
    delta_bias = delta_bias.to(compute) if delta_bias is not None else u.new_zeros(dim, dtype=compute)
    z = z.to(compute) if z is not None else None
    with torch.autocast(u.device.type, enabled=False):
        inputs = (t.to(compute) for t in (u, delta, A, B, C))
        y, last_state = cpu_scan.scan(*inputs, D, z, delta_bias, delta_softplus)
    return (y.to(dtype), last_state) if return_last_state else y.to(dtype)


def _scan(u, delta, A, B, C, chunk_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The chunked scan; under torch.compile an opaque call (a graph break), as mamba_ssm's CUDA scan is.

    Traced, dynamo would unroll the Python loop over chunks and the odd-even levels inside
    each: 11 minutes of compiling for one block at T=1024 on the 2-core CPU, and a compiled
    step 50% slower than eager. Compiled Mamba therefore fuses the projections, conv and
    gating around an eager scan. `torch._disable_dynamo` (not `torch.compiler.disable`, which
    imports dynamo, 1.3 s, when applied) defers the import to a compiled call.
    """
    if torch.compiler.is_compiling():
        return _opaque_scan(u, delta, A, B, C, chunk_size)
    return _ChunkedScan.apply(u, delta, A, B, C, chunk_size)


@torch._disable_dynamo
def _opaque_scan(u, delta, A, B, C, chunk_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    return _ChunkedScan.apply(u, delta, A, B, C, chunk_size)


def mamba_ssm_selective_scan() -> Callable[..., torch.Tensor]:
    """mamba_ssm's CUDA `selective_scan_fn` (same contract as `chunked_selective_scan`)."""
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

    return selective_scan_fn


def _scan_(a: torch.Tensor, b: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    """In place on b (a is clobbered): b_t <- a_t * b_{t-1} + b_t along dim 1, inclusive.

    a, b: (B, l, D, N), any l. With reverse=True the recurrence runs backwards:
    b_t <- a_t * b_{t+1} + b_t. Odd-even reduction: fold neighbouring pairs, scan the folded
    half recursively, then fill in the elements that were folded away. Returns b.
    """
    length = b.shape[1]
    if length < 2:
        return b
    half = length // 2
    if reverse:  # pairs (t, t+1) counted from the end; t receives
        dst, src = slice(length - 2 * half, length - 1, 2), slice(length - 2 * half + 1, length, 2)
        first = (length - 1) % 2
        fill, fill_from = slice(first, length - 2, 2), slice(first + 1, length - 1, 2)
    else:  # pairs (t-1, t) from the start; t receives
        dst, src = slice(1, 2 * half, 2), slice(0, 2 * half, 2)
        fill, fill_from = slice(2, length, 2), slice(1, length - 1, 2)
    b[:, dst].addcmul_(a[:, dst], b[:, src])  # b_dst <- a_dst * b_src + b_dst
    a[:, dst].mul_(a[:, src])
    _scan_(a[:, dst], b[:, dst], reverse)
    b[:, fill].addcmul_(a[:, fill], b[:, fill_from])
    return b


def _to_time_major(u, delta, B, C):
    """(B, D, L) and (B, N, L) inputs as contiguous (B, L, D) and (B, L, N)."""
    return tuple(t.transpose(1, 2).contiguous() for t in (u, delta, B, C))


def _decay_and_input(u_c, delta_c, A, B_c):
    """a = exp(delta * A) and b = delta * u * B for one chunk, both (B, l, D, N)."""
    a = torch.exp_(delta_c.unsqueeze(-1) * A)  # (B, l, D, N)
    b = (delta_c * u_c).unsqueeze(-1) * B_c.unsqueeze(2)  # (B, l, D, N)
    return a, b


def _chunk_states(a, b, h0):
    """States h_t of one chunk, (B, l, D, N), given the state h0 (B, D, N) entering it.
    Consumes a and b."""
    b[:, 0].addcmul_(a[:, 0], h0)
    return _scan_(a, b)


def _bounds(length: int, chunk_size: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + chunk_size, length)) for lo in range(0, length, chunk_size)]


def _scan_forward(u, delta, A, B, C, chunk_size):
    """u, delta (B, L, D); B, C (B, L, N) -> y (B, L, D), the state entering every chunk,
    (B, n_chunks, D, N), and the state after the last step (B, D, N)."""
    batch, length, dim = u.shape
    bounds = _bounds(length, chunk_size)
    y = torch.empty_like(u)
    entry = u.new_empty(batch, len(bounds), dim, A.shape[1])
    h = u.new_zeros(batch, dim, A.shape[1])  # (B, D, N)
    for c, (lo, hi) in enumerate(bounds):
        entry[:, c] = h
        a, b = _decay_and_input(u[:, lo:hi], delta[:, lo:hi], A, B[:, lo:hi])
        hs = _chunk_states(a, b, h)  # (B, l, D, N)
        y[:, lo:hi] = torch.matmul(hs, C[:, lo:hi].unsqueeze(-1)).squeeze(-1)  # sum_n h * C
        h = hs[:, -1].clone()
    return y, entry, h


def _chunk_backward(gy_c, u_c, delta_c, A, B_c, C_c, h0, carry):
    """Gradients for one chunk, all in (B, l, ...) layout. gy_c: (B, l, D); h0: the state
    entering the chunk (B, D, N); carry: a_next * dL/dh_next from the following chunk (B, D, N).

    Returns (gu_c, gdelta_c, gA_c, gB_c, gC_c, carry for the previous chunk).
    """
    a, b = _decay_and_input(u_c, delta_c, A, B_c)
    hs = _chunk_states(a.clone(), b, h0)  # (B, l, D, N)
    # Adjoint: g_t = C_t * gy_t + a_{t+1} * g_{t+1}, a reverse linear recurrence.
    coeff = torch.empty_like(a)
    coeff[:, :-1] = a[:, 1:]
    coeff[:, -1] = 1.0
    g = gy_c.unsqueeze(-1) * C_c.unsqueeze(2)  # (B, l, D, N)
    g[:, -1] += carry
    g = _scan_(coeff, g, reverse=True)
    g_dA = g * a  # d(delta * A) = g_t * a_t * h_{t-1}
    g_dA[:, 1:] *= hs[:, :-1]
    g_dA[:, 0] *= h0
    du = delta_c * u_c  # (B, l, D)
    g_b_B = torch.matmul(g, B_c.unsqueeze(-1)).squeeze(-1)  # (B, l, D): sum_n g * B
    gu_c = g_b_B * delta_c
    gdelta_c = g_b_B * u_c + (g_dA * A).sum(-1)
    gA_c = torch.einsum("bldn,bld->dn", g_dA, delta_c)
    gB_c = torch.matmul(du.unsqueeze(-2), g).squeeze(-2)  # (B, l, N): sum_d g * du
    gC_c = torch.matmul(gy_c.unsqueeze(-2), hs).squeeze(-2)  # (B, l, N): sum_d h * gy
    return gu_c, gdelta_c, gA_c, gB_c, gC_c, a[:, 0] * g[:, 0]


class _ChunkedScan(torch.autograd.Function):
    """(y (B, D, L), last state (B, D, N)) = selective scan of (u, delta, A, B, C), recomputing
    states in backward. The last state is not differentiable."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, chunk_size):
        u, delta, B, C = _to_time_major(u, delta, B, C)
        y, entry, last = _scan_forward(u, delta, A, B, C, chunk_size)
        ctx.save_for_backward(u, delta, A, B, C, entry)
        ctx.chunk_size = chunk_size
        ctx.mark_non_differentiable(last)
        return y.transpose(1, 2), last

    @staticmethod
    @once_differentiable
    def backward(ctx, gy, _g_last):
        with torch.autocast(gy.device.type, enabled=False):
            return _ChunkedScan._backward(ctx, gy.to(ctx.saved_tensors[0].dtype))

    @staticmethod
    def _backward(ctx, gy):
        u, delta, A, B, C, entry = ctx.saved_tensors  # (B, L, D) / (B, L, N)
        gy = gy.transpose(1, 2).contiguous()  # (B, L, D)
        gu, gdelta, gB, gC = (torch.empty_like(t) for t in (u, delta, B, C))
        gA = torch.zeros_like(A)  # (D, N)
        carry = torch.zeros_like(entry[:, 0])  # (B, D, N)
        bounds = _bounds(u.shape[1], ctx.chunk_size)
        for c in reversed(range(len(bounds))):
            t = slice(*bounds[c])
            grads = _chunk_backward(gy[:, t], u[:, t], delta[:, t], A, B[:, t], C[:, t], entry[:, c], carry)
            gu[:, t], gdelta[:, t], gA_c, gB[:, t], gC[:, t], carry = grads
            gA += gA_c
        gu, gdelta, gB, gC = (g.transpose(1, 2) for g in (gu, gdelta, gB, gC))
        return gu, gdelta, gA, gB, gC, None
