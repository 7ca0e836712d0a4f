"""Plain, slow reference implementations the model-zoo tests compare against.

They are written from the paper's official script and mamba_ssm's `selective_scan_ref`
semantics, as functions of a state dict with the official key names, so they share no
code with gam_bench.models.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def sequential_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """One time step at a time. u, delta, z (B, D, L); A (D, N); B, C (B, N, L)."""
    if delta_bias is not None:
        delta = delta + delta_bias[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])  # (B, D, N)
    ys = []
    for t in range(u.shape[-1]):
        decay = torch.exp(delta[:, :, t, None] * A)  # (B, D, N)
        h = decay * h + (delta[:, :, t] * u[:, :, t])[..., None] * B[:, None, :, t]
        ys.append((h * C[:, None, :, t]).sum(-1))  # (B, D)
    y = torch.stack(ys, dim=-1)  # (B, D, L)
    if D is not None:
        y = y + u * D[:, None]
    if z is not None:
        y = y * F.silu(z)
    return y


def _ln(x, sd, key):
    return F.layer_norm(x, x.shape[-1:], sd[f"{key}.weight"], sd[f"{key}.bias"])


def _ffn(x, sd, key):
    h = F.gelu(F.linear(x, sd[f"{key}.0.weight"], sd[f"{key}.0.bias"]))
    return F.linear(h, sd[f"{key}.2.weight"], sd[f"{key}.2.bias"])


def _embed(idx, sd):
    T = idx.shape[1]
    return sd["token_embedding.weight"][idx] + sd["pos_embedding.weight"][:T]


def _head(x, sd):
    return _ln(x, sd, "ln_f") @ sd["head.weight"].T


def gam_forward(idx, sd, n_layers):
    """The official GAM_Model forward (eval mode) from an official-layout state dict."""
    x = _embed(idx, sd)
    T = idx.shape[1]
    for i in range(n_layers):
        p = f"blocks.{i}"
        h = _ln(x, sd, f"{p}.ln1")
        w = sd[f"{p}.causal_conv.weight"]
        local = F.conv1d(h.transpose(1, 2), w, sd[f"{p}.causal_conv.bias"], padding=w.shape[-1] - 1, groups=w.shape[0])[
            :, :, :T
        ].transpose(1, 2)
        M = sd[f"{p}.memory_bank"]
        glob = torch.softmax(h @ M.T, dim=-1) @ M
        g_local, g_global = F.linear(h, sd[f"{p}.gate.weight"], sd[f"{p}.gate.bias"]).chunk(2, -1)
        x = x + torch.sigmoid(g_local) * local + torch.sigmoid(g_global) * glob
        x = x + _ffn(_ln(x, sd, f"{p}.ln2"), sd, f"{p}.ffn")
    return _head(x, sd)


def transformer_forward(idx, sd, n_layers, n_heads):
    """The official TransformerModel forward (eval mode), with its `attn.bias` mask buffer."""
    x = _embed(idx, sd)
    B, T, C = x.shape
    for i in range(n_layers):
        p = f"blocks.{i}"
        h = _ln(x, sd, f"{p}.ln_1")
        q, k, v = F.linear(h, sd[f"{p}.attn.c_attn.weight"], sd[f"{p}.attn.c_attn.bias"]).split(C, 2)
        q, k, v = (t.view(B, T, n_heads, C // n_heads).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // n_heads)
        att = att.masked_fill(sd[f"{p}.attn.bias"][:, :, :T, :T] == 0, float("-inf"))
        y = (torch.softmax(att, -1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + F.linear(y, sd[f"{p}.attn.c_proj.weight"], sd[f"{p}.attn.c_proj.bias"])
        x = x + _ffn(_ln(x, sd, f"{p}.ln_2"), sd, f"{p}.ffn")
    return _head(x, sd)


def mamba_mixer_forward(x, sd, prefix):
    """mamba_ssm's Mamba.forward (reference path) from its state-dict entries under `prefix`."""
    L = x.shape[1]
    w = lambda name: sd[f"{prefix}{name}"]  # noqa: E731
    xz = (x @ w("in_proj.weight").T).transpose(1, 2)  # (B, 2E, L)
    xs, z = xz.chunk(2, dim=1)
    cw = w("conv1d.weight")
    xs = F.silu(F.conv1d(xs, cw, w("conv1d.bias"), padding=cw.shape[-1] - 1, groups=cw.shape[0])[..., :L])
    R, N = w("dt_proj.weight").shape[1], w("A_log").shape[1]
    dt, B, C = (xs.transpose(1, 2) @ w("x_proj.weight").T).split([R, N, N], dim=-1)
    dt = (dt @ w("dt_proj.weight").T).transpose(1, 2)
    y = sequential_scan(
        xs,
        dt,
        -torch.exp(w("A_log")),
        B.transpose(1, 2),
        C.transpose(1, 2),
        w("D"),
        z,
        w("dt_proj.bias"),
        delta_softplus=True,
    )
    return y.transpose(1, 2) @ w("out_proj.weight").T


def mamba_paper_forward(idx, sd, n_layers):
    """The official MambaModel forward (eval mode): bare Mamba layers, no residual, no norm."""
    x = _embed(idx, sd)
    for i in range(n_layers):
        x = mamba_mixer_forward(x, sd, f"blocks.{i}.")
    return _head(x, sd)
