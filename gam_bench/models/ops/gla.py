"""Gated linear attention (GLA, arXiv 2312.06635) and its scalar-gate special cases, simple
GLA and RetNet's retention, in flash-linear-attention's layout and argument names.

The recurrence, per batch, head and time step t (S: a (K, V) state, g_t <= 0 a log decay
per key dimension, g_t broadcast over V):

    S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t        S_{-1} = initial_state (or 0)
    o_t = (scale * q_t) S_t

Tensors: q, k (B, T, H, K); v (B, T, H, V); g (B, T, H, K) for GLA, (B, T, H) for simple GLA;
initial_state and the final state (B, H, K, V), float32. Outputs o (B, T, H, V) in v's dtype;
everything is computed in float32 (float64 inputs stay float64). Each function returns
(o, final_state), final_state None unless output_final_state.

`chunk_gla` (the default everywhere) splits the sequence into chunks of C steps; with
b = cumsum(g) from a chunk's start (non-increasing):
  - inside a chunk, o_t = sum_{s <= t} A[t, s] v_s with A[t, s] = sum_k q_tk k_sk exp(b_tk - b_sk),
    as one matmul of (q exp(b)) and (k exp(-b)) while the chunk's decay stays above
    -SAFE_LOG_DECAY (the factor exp(-b) then fits float32; checking it is one host sync per
    call on an accelerator), else pair by pair, where every
    exponent is <= 0 and nothing overflows whatever the gates (a (C, C, K) tensor per chunk);
  - across chunks, o_t += (q_t exp(b_t)) S_entry, where the state entering each chunk comes
    from a loop over chunks (never over steps): S <- exp(b_C) S + (k exp(b_C - b))^T v.
  Sequences are zero-padded to a multiple of C (g = 0 and k = 0 there change nothing).
  Autograd differentiates it; what it keeps is linear in T. FlopCounterMode sees the
  matmuls; the elementwise decay work is added by formula (`gam_bench.models.flop_count`).
`recurrent_gla` is the step-by-step definition above, a Python loop over time (the twin the
tests compare against, as fla's `naive_recurrent_gla`); `gla_step` is one step of it (decode).

`chunk_simple_gla` / `recurrent_simple_gla` take a scalar gate per head and step, g (B, T, H),
and run the same code with g broadcast over K: one op, not a second kernel. `chunk_retention`
/ `recurrent_retention` are simple GLA with RetNet's fixed decay per head,
g_h = log(1 - 2^(-5-h)), as fla's `chunk_retention`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gam_bench.models.flop_count import counted
from gam_bench.models.ops._chunks import SAFE_LOG_DECAY, causal_mask

# Steps per chunk. A longer chunk means fewer, larger matmuls and fewer state updates, at
# C^2 weights per chunk; 64 with the factorised weights was about 3x faster than 16 with the
# pairwise ones on the CPU (docs/results/field.md, "GLA").
DEFAULT_CHUNK_SIZE = 64
# The factorised weights (q exp(b)) (k exp(-b))^T multiply factors up to exp(-b_C): safe in
# float32 while a chunk's decay stays above -SAFE_LOG_DECAY (ops._chunks).


def chunk_gla(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """GLA by chunks: q, k, g (B, T, H, K), v (B, T, H, V) -> (o (B, T, H, V), final state (B, H, K, V))."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    B, T, H, K = q.shape
    V = v.shape[-1]
    scale = K**-0.5 if scale is None else scale
    compute = torch.promote_types(q.dtype, torch.float32)
    with torch.autocast(q.device.type, enabled=False):
        qc, kc, vc, gc = (_chunked(t.to(compute), chunk_size) for t in (q, k, v, g))  # (B, H, N, C, *)
        b = gc.cumsum(-2)  # (B, H, N, C, K): log decay since the chunk's start, non-increasing
        b_last = b[..., -1:, :]  # (B, H, N, 1, K): the chunk's whole decay
        q_dec = qc * scale * torch.exp(b)  # (B, H, N, C, K)
        factorised = T == 0 or bool(b_last.min() >= -SAFE_LOG_DECAY)
        A = _weights_factorised(q_dec, kc, b) if factorised else _weights_pairwise(qc * scale, kc, b)
        u = (kc * torch.exp(b_last - b)).transpose(-1, -2) @ vc  # (B, H, N, K, V): the chunk's own state
        h = qc.new_zeros(B, H, K, V) if initial_state is None else initial_state.to(compute)
        entry = []
        for n in range(qc.shape[2]):  # the state entering each chunk; a loop over chunks, not steps
            entry.append(h)
            h = torch.exp(b_last[:, :, n, 0]).unsqueeze(-1) * h + u[:, :, n]  # (B, H, K, V)
        o = A @ vc  # (B, H, N, C, V)
        if entry:
            o = o + q_dec @ torch.stack(entry, dim=2)
        o = counted(o, *_chunk_gla_flops(B, H, T, K, V, chunk_size, factorised))
    o = o.flatten(2, 3)[:, :, :T].transpose(1, 2)  # (B, T, H, V)
    return o.to(v.dtype), (h if output_final_state else None)


def _chunked(x: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """(B, T, H, D) -> (B, H, N, C, D), zero-padded to N * C steps."""
    B, T, H, D = x.shape
    pad = -T % chunk_size
    x = F.pad(x, (0, 0, 0, 0, 0, pad)) if pad else x  # (B, T + pad, H, D)
    return x.transpose(1, 2).reshape(B, H, (T + pad) // chunk_size, chunk_size, D)


def _weights_factorised(q_dec: torch.Tensor, k: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A[t, s] = (q_t exp(b_t)) . (k_s exp(-b_s)) for s <= t, else 0: (B, H, N, C, C)."""
    A = q_dec @ (k * torch.exp(-b)).transpose(-1, -2)  # (B, H, N, C, C)
    return A * causal_mask(A.shape[-1], A.device)


def _weights_pairwise(q: torch.Tensor, k: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A[t, s] = sum_k q_tk k_sk exp(b_tk - b_sk) for s <= t, formed pair by pair (every
    exponent <= 0, so any decay is safe; (B, H, N, C, C, K) work): (B, H, N, C, C)."""
    mask = causal_mask(q.shape[-2], q.device)[:, :, None]  # (C, C, 1)
    diff = (b.unsqueeze(-2) - b.unsqueeze(-3)).masked_fill(~mask, float("-inf"))  # (B, H, N, C, C, K)
    return (q.unsqueeze(-2) * k.unsqueeze(-3) * torch.exp(diff)).sum(-1)


def _chunk_gla_flops(B: int, H: int, T: int, K: int, V: int, C: int, factorised: bool) -> tuple[int, int]:
    """(forward, backward) FLOPs of chunk_gla's elementwise work, which the counter cannot see:
    the decay factors (a few per (t, k)), the pairwise weights when used (5 per (t, s, k)
    pair of a chunk: difference, exp, two products, sum) and the state recurrence (a
    multiply-add per state element per chunk). Backward: twice forward."""
    N = -(-T // C)
    per_step = 6 * B * H * N * C * K + (0 if factorised else 5 * B * H * N * C * C * K)
    recurrence = 2 * B * H * N * K * V
    return per_step + recurrence, 2 * (per_step + recurrence)


def recurrent_gla(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    gk: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The recurrence step by step: q, k, gk (B, T, H, K), v (B, T, H, V) -> (o, final state)."""
    B, T, H, K = q.shape
    scale = K**-0.5 if scale is None else scale
    compute = torch.promote_types(q.dtype, torch.float32)
    state = q.new_zeros(B, H, K, v.shape[-1], dtype=compute) if initial_state is None else initial_state.to(compute)
    outs = []
    with torch.autocast(q.device.type, enabled=False):
        for t in range(T):
            o_t, state = gla_step(q[:, t], k[:, t], v[:, t], gk[:, t], state, scale)
            outs.append(o_t)
    o = torch.stack(outs, dim=1) if outs else v.new_zeros(B, 0, H, v.shape[-1])  # (B, T, H, V)
    return o.to(v.dtype), (state if output_final_state else None)


def gla_step(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gk: torch.Tensor, state: torch.Tensor, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step: q, k, gk (B, H, K), v (B, H, V), state (B, H, K, V) -> (o (B, H, V), new state),
    in the state's dtype."""
    dtype = state.dtype
    q, k, v, gk = (t.to(dtype) for t in (q, k, v, gk))
    state = torch.exp(gk).unsqueeze(-1) * state + k.unsqueeze(-1) * v.unsqueeze(-2)  # (B, H, K, V)
    o = (q * scale).unsqueeze(-2) @ state  # (B, H, 1, V)
    return o.squeeze(-2), state


def chunk_simple_gla(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """GLA with one log decay per head and step, g (B, T, H): chunk_gla with g broadcast over K."""
    gk = g.unsqueeze(-1).expand(q.shape)  # (B, T, H, K)
    return chunk_gla(q, k, v, gk, scale, initial_state, output_final_state, chunk_size)


def recurrent_simple_gla(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The step-by-step twin of chunk_simple_gla, g (B, T, H)."""
    gk = g.unsqueeze(-1).expand(q.shape)  # (B, T, H, K)
    return recurrent_gla(q, k, v, gk, scale, initial_state, output_final_state)


def retention_log_decay(n_heads: int, device: torch.device | None = None) -> torch.Tensor:
    """RetNet's fixed decay per head, log(1 - 2^(-5-h)) for h = 0..H-1: (H,), float32."""
    h = torch.arange(n_heads, dtype=torch.float32, device=device)
    return torch.log1p(-torch.pow(2.0, -5.0 - h))


def _retention_gate(q: torch.Tensor) -> torch.Tensor:
    B, T, H, _ = q.shape
    return retention_log_decay(H, q.device).expand(B, T, H)  # (B, T, H)


def chunk_retention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """RetNet's retention: chunk_simple_gla with the fixed decay per head."""
    return chunk_simple_gla(q, k, v, _retention_gate(q), scale, initial_state, output_final_state, chunk_size)


def recurrent_retention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The step-by-step twin of chunk_retention."""
    return recurrent_simple_gla(q, k, v, _retention_gate(q), scale, initial_state, output_final_state)
