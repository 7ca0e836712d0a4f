"""Mamba2's state space duality (SSD, arXiv 2405.21060) in flash-linear-attention's layout.

SSD with a scalar decay per head is linear attention with a scalar gate per step (fla's
`chunk_simple_gla`): with S the (K, V) state of each head,

    S_t = exp(g_t) * S_{t-1} + k_t^T v_t          o_t = scale * q_t S_t

Mamba2 maps onto it as q = C, k = B, v = x * dt, g = A * dt, scale = 1 (gam_bench.models.mamba2).
As Mamba2's `ngroups`, q and k may have fewer heads (G) than v (H, a multiple of G): head h
reads q, k of group h // (H / G). Their products are then computed once per group, not per head.

`chunk_ssd` is the chunked "dual" form. Inside a chunk of C steps the quadratic (masked
attention) form, (q k^T * L) v with L_ij = exp(gc_i - gc_j) for j <= i (gc: the cumulative log
decay); across chunks a sequential pass over the (K, V) states (a Python loop over T/C chunks,
never over steps), whose contribution to each chunk's outputs is one batched matmul. The
decays are scalars per head and step, so they are applied to v and to the outputs, never to
the shared q and k. Work and memory are O(T C). `recurrent_ssd` is the step-by-step reference
(and the decode step).
"""

from __future__ import annotations

import torch

from gam_bench.models.ops._chunks import compute_dtype, decay_matrix, pad_time, to_chunks

CHUNK_SIZE = 64


def chunk_ssd(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = CHUNK_SIZE,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """q, k (B, T, G, K); v (B, T, H, V) with H a multiple of G; g (B, T, H) log decay per step
    (<= 0); scale: default K ** -0.5; initial_state (B, H, K, V). Returns (o (B, T, H, V) in v's
    dtype, final state (B, H, K, V) in float32, or None). Computed in float32."""
    B, T, G, K = q.shape
    H, V = v.shape[2:]
    Hg = _heads_per_group(G, H)
    scale = K**-0.5 if scale is None else scale
    dtype, out_dtype = compute_dtype(q, k, v), v.dtype
    C = chunk_size
    with torch.autocast(q.device.type, enabled=False):
        q, k = (to_chunks(pad_time(t.to(dtype), C), C) for t in (q, k))  # (B, G, n, C, K)
        v = to_chunks(pad_time(v.to(dtype).view(B, T, G, Hg, V), C), C)  # (B, G, n, C, Hg, V)
        gc = to_chunks(pad_time(g.to(dtype).view(B, T, G, Hg), C), C).cumsum(3)  # (B, G, n, C, Hg)
        n = q.shape[2]
        scores = (q * scale) @ k.transpose(-1, -2)  # (B, G, n, C, C), once per group
        masked = scores.unsqueeze(3) * decay_matrix(gc.transpose(3, 4), 0)  # (B, G, n, Hg, C, C)
        o = (masked @ v.transpose(3, 4)).transpose(3, 4)  # (B, G, n, C, Hg, V): within the chunk
        last = gc[:, :, :, -1:]  # (B, G, n, 1, Hg)
        v_end = (v * (last - gc).exp().unsqueeze(-1)).view(B, G, n, C, Hg * V)  # decayed to the chunk's end
        chunk_states = (k.transpose(-1, -2) @ v_end).view(B, G, n, K, Hg, V)
        h0 = None if initial_state is None else initial_state.to(dtype).view(B, G, Hg, K, V).transpose(2, 3)
        entry, final = _pass_states(chunk_states, last.squeeze(3).exp(), h0)  # (B, G, n, K, Hg, V)
        inter = ((q * scale) @ entry.view(B, G, n, K, Hg * V)).view(B, G, n, C, Hg, V)
        o = o + inter * gc.exp().unsqueeze(-1)  # from earlier chunks
        o = o.permute(0, 2, 3, 1, 4, 5).reshape(B, n * C, H, V)[:, :T]  # (B, T, H, V)
    final = final.transpose(2, 3).reshape(B, H, K, V) if output_final_state else None
    return o.to(out_dtype), final


def _heads_per_group(groups: int, heads: int) -> int:
    if heads % groups:
        raise ValueError(f"v has {heads} heads, not a multiple of the {groups} heads of q and k")
    return heads // groups


def _pass_states(chunk_states, chunk_decay, h0):
    """States entering each chunk, (B, G, n, K, Hg, V), and the state after the last one.
    chunk_states (B, G, n, K, Hg, V): each chunk's own contribution; chunk_decay (B, G, n, Hg);
    h0 (B, G, K, Hg, V) or None."""
    S = torch.zeros_like(chunk_states[:, :, 0]) if h0 is None else h0  # (B, G, K, Hg, V)
    entries = []
    # unbind, not indexing: indexing's backward writes a whole zero tensor per chunk (O(n^2))
    for state, decay in zip(chunk_states.unbind(2), chunk_decay.unbind(2)):
        entries.append(S)
        S = decay[:, :, None, :, None] * S + state
    return torch.stack(entries, dim=2), S


def recurrent_ssd(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Same contract as `chunk_ssd`, one step at a time."""
    B, T, G, K = q.shape
    H = v.shape[2]
    Hg = _heads_per_group(G, H)
    scale = K**-0.5 if scale is None else scale
    dtype, out_dtype = compute_dtype(q, k, v), v.dtype
    with torch.autocast(q.device.type, enabled=False):
        q, k = (t.to(dtype).repeat_interleave(Hg, dim=2) for t in (q, k))  # (B, T, H, K)
        v, g = v.to(dtype), g.to(dtype)
        S = q.new_zeros(B, H, K, v.shape[-1]) if initial_state is None else initial_state.to(dtype)
        outs = []
        for t in range(T):
            S = g[:, t, :, None, None].exp() * S + k[:, t, :, :, None] * v[:, t, :, None, :]  # (B, H, K, V)
            outs.append(scale * (q[:, t, :, :, None] * S).sum(-2))  # (B, H, V)
        o = torch.stack(outs, dim=1)  # (B, T, H, V)
    return o.to(out_dtype), (S if output_final_state else None)
