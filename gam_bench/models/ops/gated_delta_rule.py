"""The gated delta rule (Gated DeltaNet, arXiv 2412.06464) in flash-linear-attention's layout.

Per head, with S the (K, V) state, decay a_t = exp(g_t) and write strength beta_t:

    S_t = a_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T        o_t = scale * q_t S_t

`chunk_gated_delta_rule` is the chunked WY form. Within a chunk of C steps, with gc the
cumulative log decay and S0 the state entering the chunk, the new values written at each step,
d = u - w S0, come from one triangular solve per chunk:

    (I + A) [u | w] = [beta v | beta exp(gc) k],   A_ij = beta_i exp(gc_i - gc_j) k_i . k_j  (j < i)

(A strictly lower triangular, so I + A is unit lower triangular; every chunk is solved at once
by `torch.linalg.solve_triangular`). Then o = exp(gc) q S0 + (q k^T * L) d with L_ij =
exp(gc_i - gc_j) for j <= i, and the next state is exp(gc_C) S0 + (exp(gc_C - gc) k)^T d.
Only the state update is sequential: a Python loop over T/C chunks of (K, K) @ (K, V) matmuls.
`recurrent_gated_delta_rule` is the step-by-step reference (and the decode step).
use_qk_l2norm_in_kernel: L2-normalise q and k over K first, as fla's layer asks its kernel to.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gam_bench.models.ops._chunks import compute_dtype, decay_matrix, from_chunks, pad_time, to_chunks

CHUNK_SIZE = 64


def chunk_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    use_qk_l2norm_in_kernel: bool = False,
    chunk_size: int = CHUNK_SIZE,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """q, k (B, T, H, K); v (B, T, H, V); g (B, T, H) log decay (<= 0); beta (B, T, H) in
    [0, 1] (or [0, 2]); scale: default K ** -0.5; initial_state (B, H, K, V). Returns
    (o (B, T, H, V) in v's dtype, final state (B, H, K, V) in float32, or None). Computed in
    float32."""
    B, T, H, K = q.shape
    scale = K**-0.5 if scale is None else scale
    dtype, out_dtype = compute_dtype(q, k, v), v.dtype
    with torch.autocast(q.device.type, enabled=False):
        q, k, v, g, beta = (t.to(dtype) for t in (q, k, v, g, beta))
        if use_qk_l2norm_in_kernel:
            q, k = F.normalize(q, dim=-1, eps=1e-6), F.normalize(k, dim=-1, eps=1e-6)
        q, k, v = (to_chunks(pad_time(t, chunk_size), chunk_size) for t in (q, k, v))  # (B, H, n, C, *)
        gc, beta = (to_chunks(pad_time(t, chunk_size), chunk_size) for t in (g, beta))  # (B, H, n, C)
        gc = gc.cumsum(-1)
        L = decay_matrix(gc, 0)  # (B, H, n, C, C): exp(gc_i - gc_j) for j <= i, else 0
        u, w = _wy(k, v, gc, beta, L)  # (B, H, n, C, V), (B, H, n, C, K)
        last = gc[..., -1:]  # (B, H, n, 1)
        k_out = k * (last - gc).exp().unsqueeze(-1)  # (B, H, n, C, K): decayed to the chunk's end
        entry, final = _pass_states(u, w, k_out, last.squeeze(-1).exp(), initial_state, dtype)
        d = u - w @ entry  # (B, H, n, C, V): what each step writes
        q = q * scale
        o = (q * gc.exp().unsqueeze(-1)) @ entry + ((q @ k.transpose(-1, -2)) * L) @ d
    return from_chunks(o, T).to(out_dtype), (final if output_final_state else None)


def _wy(k, v, gc, beta, L):
    """The WY representation of one chunk (all chunks at once): u, w with (I + A)[u | w] =
    [beta v | beta exp(gc) k]. k (B, H, n, C, K), v (B, H, n, C, V), gc, beta (B, H, n, C),
    L (B, H, n, C, C) the decays exp(gc_i - gc_j), j <= i. The solve reads only A's strictly
    lower part (unitriangular: the diagonal is taken as 1, and gets no gradient), so A's
    diagonal and I need not be formed."""
    V = v.shape[-1]
    A = (k @ k.transpose(-1, -2)) * L * beta.unsqueeze(-1)  # (B, H, n, C, C); used: strictly lower
    rhs = torch.cat([v, k * gc.exp().unsqueeze(-1)], dim=-1) * beta.unsqueeze(-1)  # (B, H, n, C, V + K)
    uw = torch.linalg.solve_triangular(A, rhs, upper=False, unitriangular=True)
    return uw.split([V, uw.shape[-1] - V], dim=-1)  # split, not sliced: its backward is one cat, not zero-fills


def _pass_states(u, w, k_out, chunk_decay, initial_state, dtype):
    """States entering each chunk, (B, H, n, K, V), and the state after the last one:
    S <- decay S + k_out^T (u - w S), chunk by chunk."""
    B, H, n, C, V = u.shape
    K = w.shape[-1]
    S = u.new_zeros(B, H, K, V) if initial_state is None else initial_state.to(dtype)
    entries = []
    # unbind, not indexing: indexing's backward writes a whole zero tensor per chunk (O(n^2))
    for u_c, w_c, k_c, decay in zip(u.unbind(2), w.unbind(2), k_out.unbind(2), chunk_decay.unbind(2)):
        entries.append(S)
        d = u_c - w_c @ S  # (B, H, C, V)
        S = decay[:, :, None, None] * S + k_c.transpose(-1, -2) @ d  # (B, H, K, V)
    return torch.stack(entries, dim=2), S


def recurrent_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    use_qk_l2norm_in_kernel: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Same contract as `chunk_gated_delta_rule`, one step at a time."""
    B, T, H, K = q.shape
    scale = K**-0.5 if scale is None else scale
    dtype, out_dtype = compute_dtype(q, k, v), v.dtype
    with torch.autocast(q.device.type, enabled=False):
        q, k, v, g, beta = (t.to(dtype) for t in (q, k, v, g, beta))
        if use_qk_l2norm_in_kernel:
            q, k = F.normalize(q, dim=-1, eps=1e-6), F.normalize(k, dim=-1, eps=1e-6)
        S = q.new_zeros(B, H, K, v.shape[-1]) if initial_state is None else initial_state.to(dtype)
        outs = []
        for t in range(T):
            S = g[:, t, :, None, None].exp() * S  # (B, H, K, V)
            kt = k[:, t]  # (B, H, K)
            write = beta[:, t, :, None] * (v[:, t] - (kt.unsqueeze(-1) * S).sum(-2))  # (B, H, V)
            S = S + kt.unsqueeze(-1) * write.unsqueeze(-2)
            outs.append(scale * (q[:, t].unsqueeze(-1) * S).sum(-2))  # (B, H, V)
        o = torch.stack(outs, dim=1)  # (B, T, H, V)
    return o.to(out_dtype), (S if output_final_state else None)
