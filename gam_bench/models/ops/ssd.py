"""Mamba2's state space duality (SSD, arXiv 2405.21060) in flash-linear-attention's layout.

SSD with a scalar decay per head is linear attention with a scalar gate per step (fla's
`chunk_simple_gla`): with S the (K, V) state of each head,

    S_t = exp(g_t) * S_{t-1} + k_t^T v_t          o_t = scale * q_t S_t

Mamba2 maps onto it as q = C, k = B, v = x * dt, g = A * dt, scale = 1 (gam_bench.models.mamba2).
As Mamba2's `ngroups`, q and k may have fewer heads (G) than v (H, a multiple of G): head h
reads q, k of group h // (H / G). Their products are then computed once per group, not per head.

`chunk_ssd` is the chunked "dual" form, time-major inside each group (the Hg heads of a group
side by side, (Hg V) wide, so every product is one batched matmul over all chunks):
  - inside a chunk of C steps, the masked attention form (q k^T * L) v with
    L_ij = exp(gc_i - gc_j) for j <= i (gc: the cumulative log decay). The decay is a scalar per
    head and step, so L factors around a reference r (the middle of the chunk's decay):
    exp(gc_i - r) [(q k^T masked) (exp(r - gc_j) v_j)], the group's (C, C) scores times the
    rescaled values of all its heads at once. The factors stay within exp(+-SAFE_LOG_DECAY)
    while a chunk's whole decay is at most 2 * SAFE_LOG_DECAY (checked: one host value per
    call); stronger decays take the pairwise form, L formed per head with every exponent <= 0
    (a (Hg, C, C) tensor per chunk), safe whatever the gates;
  - across chunks, a sequential pass over the (K, Hg V) states (a loop over T/C chunks, never
    over steps, in place in both directions: `_PassStates`), whose contribution to each
    chunk's outputs is one batched matmul.
Work and memory are O(T C). `recurrent_ssd` is the step-by-step reference (and the decode step).
"""

from __future__ import annotations

import torch

from gam_bench.models.ops._chunks import SAFE_LOG_DECAY, causal_mask, compute_dtype, decay_matrix, pad_time

# Steps per chunk (measured on the CPU: docs/results/field.md, "Mamba2").
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
        q, k = (_group_chunks(t.to(dtype), C) for t in (q, k))  # (B, G, n, C, K)
        v = _group_chunks(v.to(dtype).reshape(B, T, G, Hg * V), C)  # (B, G, n, C, Hg V)
        gc = _group_chunks(g.to(dtype).reshape(B, T, G, Hg), C).cumsum(3)  # (B, G, n, C, Hg)
        n = q.shape[2]
        q = q if scale == 1 else q * scale  # Mamba2's scale is 1
        scores = q @ k.transpose(-1, -2)  # (B, G, n, C, C), once per group
        h0 = _initial(initial_state, B, G, Hg, K, V, scores)  # (B, G, K, Hg V)
        if _factorisable(gc):
            o, final = _factorised(q, k, v, gc, scores, h0)
        else:
            o, final = _pairwise(q, k, v, gc, scores, h0)
        o = o.permute(0, 2, 3, 1, 4).reshape(B, n * C, H, V)[:, :T]  # (B, T, H, V)
    final = final.view(B, G, K, Hg, V).transpose(2, 3).reshape(B, H, K, V) if output_final_state else None
    return o.to(out_dtype), final


def _heads_per_group(groups: int, heads: int) -> int:
    if heads % groups:
        raise ValueError(f"v has {heads} heads, not a multiple of the {groups} heads of q and k")
    return heads // groups


def _group_chunks(x: torch.Tensor, C: int) -> torch.Tensor:
    """x (B, T, G, D) -> (B, G, n, C, D), zero-padded to n * C steps."""
    x = pad_time(x, C).transpose(1, 2)  # (B, G, T', D)
    return x.reshape(*x.shape[:2], -1, C, x.shape[-1])


def _per_head(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x (..., Hg V) times w (..., Hg), each head's V columns by its weight."""
    Hg = w.shape[-1]
    return (x.unflatten(-1, (Hg, -1)) * w.unsqueeze(-1)).flatten(-2)


def _factorisable(gc: torch.Tensor) -> bool:
    """Whether every chunk's whole decay is within 2 * SAFE_LOG_DECAY."""
    return gc.numel() == 0 or bool(gc[:, :, :, -1].min() >= -2 * SAFE_LOG_DECAY)


def _factorised(q, k, v, gc, scores, h0):
    """Every decay factored around r = gc_C / 2, half the chunk's whole decay:
    o_i = exp(gc_i - r) [sum_{j <= i} scores_ij v'_j + q_i E_c] with v' = exp(r - gc) v and
    E_c = exp(r_c) S_c the entering state seen from r; E_{c+1} = exp(r_{c+1} + gc_C - r_c)
    (E_c + k^T v'), the last chunk's r_{c+1} taken as 0 (E_n is the final state).
    q, k (B, G, n, C, K), v (B, G, n, C, Hg V), gc (B, G, n, C, Hg), scores (B, G, n, C, C),
    h0 (B, G, K, Hg V) -> (o (B, G, n, C, Hg V), final state (B, G, K, Hg V))."""
    last = gc[:, :, :, -1]  # (B, G, n, Hg)
    r = last.unsqueeze(3) / 2  # (B, G, n, 1, Hg)
    v = _per_head(v, (r - gc).exp())  # (B, G, n, C, Hg V), factors <= exp(SAFE_LOG_DECAY)
    r_next = torch.cat([r[:, :, 1:, 0], torch.zeros_like(r[:, :, :1, 0])], dim=2)  # (B, G, n, Hg)
    carry = (r_next + last / 2).exp()  # (B, G, n, Hg): exp(r_{c+1} + gc_C - r_c), <= 1
    h0 = _scale_heads_(h0.clone(), r[:, :, 0, 0].exp())
    entry, final = _PassStates.apply(k.transpose(-1, -2) @ v, carry, h0)  # (B, G, n, K, Hg V)
    scores = scores.masked_fill(~causal_mask(q.shape[3], q.device), 0)
    o = torch.baddbmm((q @ entry).flatten(0, 2), scores.flatten(0, 2), v.flatten(0, 2))  # (B G n, C, Hg V)
    return _per_head(o.view_as(v), (gc - r).exp()), final


def _pairwise(q, k, v, gc, scores, h0):
    """The same with L_ij = exp(gc_i - gc_j) formed per head, every exponent <= 0 (safe
    whatever the gates, a (Hg, C, C) tensor per chunk); the states at chunk boundaries."""
    Hg = gc.shape[-1]
    last = gc[:, :, :, -1:]  # (B, G, n, 1, Hg)
    masked = scores.unsqueeze(3) * decay_matrix(gc.transpose(3, 4), 0)  # (B, G, n, Hg, C, C)
    o = (masked @ v.unflatten(-1, (Hg, -1)).transpose(3, 4)).transpose(3, 4).flatten(-2)  # (B, G, n, C, Hg V)
    states = k.transpose(-1, -2) @ _per_head(v, (last - gc).exp())  # (B, G, n, K, Hg V)
    entry, final = _PassStates.apply(states, last.squeeze(3).exp(), h0, True)  # (B, G, n, K, Hg V)
    return o + _per_head(q @ entry, gc.exp()), final


def _initial(initial_state, B, G, Hg, K, V, like):
    """initial_state (B, H, K, V) as (B, G, K, Hg V) in like's dtype; zeros if None."""
    if initial_state is None:
        return like.new_zeros(B, G, K, Hg * V)
    return initial_state.to(like.dtype).view(B, G, Hg, K, V).transpose(2, 3).reshape(B, G, K, Hg * V)


class _PassStates(torch.autograd.Function):
    """The states entering each chunk and the state after the last, E_0 = h0 and
    E_{c+1} = a_c (E_c + X_c) (or, decay_first, a_c E_c + X_c). X (B, G, n, K, Hg V) each
    chunk's own contribution, a (B, G, n, Hg) per chunk and head, h0 (B, G, K, Hg V). A loop
    over chunks both ways, in place: one autograd node, not two per chunk, no stack of entries."""

    @staticmethod
    def forward(ctx, X, a, h0, decay_first=False):
        entries = torch.empty_like(X)  # (B, G, n, K, Hg V)
        E = h0.clone()  # (B, G, K, Hg V)
        for c in range(X.shape[2]):
            entries[:, :, c] = E
            if decay_first:
                _scale_heads_(E, a[:, :, c]).add_(X[:, :, c])
            else:
                _scale_heads_(E.add_(X[:, :, c]), a[:, :, c])
        ctx.save_for_backward(X, a, entries)
        ctx.decay_first = decay_first
        return entries, E

    @staticmethod
    def backward(ctx, g_entries, g_final):
        X, a, entries = ctx.saved_tensors
        Hg = a.shape[-1]
        g_X, g_a = torch.empty_like(X), torch.empty_like(a)  # (B, G, n, K, Hg V), (B, G, n, Hg)
        G = g_final.clone()  # (B, G, K, Hg V): the gradient reaching E_{c+1}
        for c in reversed(range(X.shape[2])):
            scaled = entries[:, :, c] if ctx.decay_first else entries[:, :, c] + X[:, :, c]
            g_a[:, :, c] = (G * scaled).unflatten(-1, (Hg, -1)).sum((2, 4))
            if ctx.decay_first:
                g_X[:, :, c] = G
                _scale_heads_(G, a[:, :, c])
            else:
                _scale_heads_(G, a[:, :, c])
                g_X[:, :, c] = G
            G.add_(g_entries[:, :, c])
        return g_X, g_a, G, None


def _scale_heads_(S: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """S (B, G, K, Hg V) *= a (B, G, Hg) per head, in place."""
    S.unflatten(-1, (a.shape[-1], -1)).mul_(a[:, :, None, :, None])
    return S


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
