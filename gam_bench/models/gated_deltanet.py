"""Gated DeltaNet (arXiv 2412.06464): the mixer, its block and its LM (the hybrid: models/hybrid.py).

The mixer is flash-linear-attention's `GatedDeltaNet` layer (use_gate, use_short_conv, no
negative eigenvalues), with its key names: q_proj, k_proj, v_proj -> depthwise causal
q_conv1d, k_conv1d, v_conv1d (kernel 4, no bias) + SiLU; beta = sigmoid(b_proj(x)); the log
decay g = -exp(A_log) * softplus(a_proj(x) + dt_bias) per head; the gated delta rule with
L2-normalised q and k (gam_bench.models.ops.gated_delta_rule); o_norm(o, g_proj(x)) (RMSNorm
per head, then * silu(gate)); o_proj. It sits in the field's shared pre-norm block with the
paper's FFN (gam_bench.models.mixer_block) and the paper's LM shell (learned positions, tied
head), like GLA and RetNet, so only the mixer differs from the paper's models.

Backends (`backend: auto | torch | cpu-fused | fla`):
  torch:     `chunk_gated_delta_rule`, the chunked WY form with a triangular solve per chunk, and
             nn.Conv1d + SiLU for the short convs;
  cpu-fused: the same op, the short convs + SiLU by Mamba's fused CPU kernel
             (gam_bench.models.short_conv: the same math, faster on the CPU: docs/results/field.md);
  fla:       flash-linear-attention's `chunk_gated_delta_rule` (triton, CUDA), the same arguments.
auto picks fla for CUDA inputs when it imports, cpu-fused for CPU inputs when the kernel builds,
else torch; asking for a backend where it cannot run is a UserError, never a fallback;
`backend_reason` says which ran and why.

Decoding: per layer a `GatedDeltaNetState`: the three conv windows (B, dim, conv_size-1) and
the (B, H, K, V) float32 state; a step is `recurrent_gated_delta_rule` for one position (both
backends). Bytes: B * ((2 H K + H V)(conv_size-1) * element size + 4 H K V), constant in T.

Paper configuration (d 512, 6 layers, vocab 10k): fla's layer defaults (expand_v 2, conv 4)
except the heads: 3 heads of 64 (fla: 6 of 256 at width 2048), which brings the LM to 22.6M
parameters; 6 heads of 64 would give 27.4M.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from gam_bench.errors import UserError
from gam_bench.models import backends, cpu_scan
from gam_bench.models.config import LMConfig
from gam_bench.models.decode import DecodeState, check_one_token
from gam_bench.models.gated_norm import GatedRMSNorm
from gam_bench.models.lm import PositionalLM
from gam_bench.models.mixer_block import MixerBlock
from gam_bench.models.ops.gated_delta_rule import chunk_gated_delta_rule, recurrent_gated_delta_rule
from gam_bench.models.registry import register_model
from gam_bench.models.short_conv import conv_silu

FLA_MODULE = "fla.ops.gated_delta_rule"
BACKEND_NAMES = {"torch": "torch-chunked", "cpu-fused": "cpu-conv+chunked", "fla": "fla-chunk"}


class GatedDeltaNetConfig(LMConfig):
    """Gated DeltaNet fields on top of the shared ones (see the module docstring for the defaults)."""

    num_heads: int = Field(3, ge=1)
    head_dim: int = Field(64, ge=1, description="q/k width per head; v's is head_dim * expand_v")
    expand_v: float = Field(2.0, gt=0)
    conv_size: int = Field(4, ge=1)
    ffn_mult: int = Field(4, ge=1, description="FFN hidden width / d_model (the paper's 4)")
    attn_every: int = Field(0, ge=0, description="hybrid: every attn_every-th layer is attention (0: none)")
    attn_heads: int = Field(8, ge=1, description="hybrid: heads of its attention layers (the paper's 8)")
    backend: Literal["auto", "torch", "cpu-fused", "fla"] = "auto"


@dataclasses.dataclass
class GatedDeltaNetState(DecodeState):
    """Conv windows of q, k, v (B, dim, conv_size-1) and the (B, H, K, V) float32 state."""

    q_conv: torch.Tensor
    k_conv: torch.Tensor
    v_conv: torch.Tensor
    state: torch.Tensor


def _fla_usable() -> bool:
    return backends.fla_reason(FLA_MODULE) is None


class GatedDeltaNet(nn.Module):
    """fla's GatedDeltaNet layer, (B, T, D) -> (B, T, D)."""

    decode_backend = "torch-step"

    def __init__(self, config: GatedDeltaNetConfig):
        super().__init__()
        if config.backend == "fla" and not _fla_usable():
            raise UserError(
                f"Gated DeltaNet config field backend='fla' is not available on this machine "
                f"({backends.fla_reason(FLA_MODULE)}; it needs `pip install 'gam-bench[fla]'`); use 'torch' or 'auto'"
            )
        if config.backend == "cpu-fused" and not cpu_scan.available():
            raise UserError(
                f"Gated DeltaNet config field backend='cpu-fused' is not available on this machine "
                f"({cpu_scan.unavailable_reason()}); use 'torch' or 'auto'"
            )
        D, H, K = config.d_model, config.num_heads, config.head_dim
        V = int(K * config.expand_v)
        self.requested, self.num_heads, self.head_k_dim, self.head_v_dim = config.backend, H, K, V
        self.q_proj = nn.Linear(D, H * K, bias=False)
        self.k_proj = nn.Linear(D, H * K, bias=False)
        self.v_proj = nn.Linear(D, H * V, bias=False)
        self.a_proj = nn.Linear(D, H, bias=False)
        self.b_proj = nn.Linear(D, H, bias=False)
        self.A_log = nn.Parameter(torch.empty(H).uniform_(0, 16).log())
        self.dt_bias = nn.Parameter(_inverse_softplus_dt(H))
        for p in (self.A_log, self.dt_bias):
            p._no_weight_decay = True
        self.q_conv1d, self.k_conv1d, self.v_conv1d = (
            _short_conv(dim, config.conv_size) for dim in (H * K, H * K, H * V)
        )
        self.g_proj = nn.Linear(D, H * V, bias=False)
        self.o_norm = GatedRMSNorm(V, eps=1e-5, norm_before_gate=True)
        self.o_proj = nn.Linear(H * V, D, bias=False)

    def _resolve(self, device: torch.device) -> str:
        if self.requested != "auto":
            return self.requested
        if device.type == "cuda":
            return "fla" if _fla_usable() else "torch"
        return "cpu-fused" if device.type == "cpu" and cpu_scan.available() else "torch"

    @property
    def backend(self) -> str:
        """What runs for inputs on the device the weights are on."""
        return BACKEND_NAMES[self._resolve(self.q_proj.weight.device)]

    @property
    def backend_reason(self) -> str:
        """Which path runs for inputs on the weights' device, and why (the `backend_reason` column)."""
        device = self.q_proj.weight.device
        return backends.fused_conv_reason(
            self.requested, device, BACKEND_NAMES, "fla", lambda: backends.fla_reason(FLA_MODULE)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._mix(x, keep_state=False)[0]

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, GatedDeltaNetState]:
        """forward(x) for x (B, T, D), and the conv windows and state after it."""
        return self._mix(x, keep_state=True)

    def _mix(self, x: torch.Tensor, keep_state: bool):
        raw = [proj(x) for proj in (self.q_proj, self.k_proj, self.v_proj)]  # (B, T, dim) each
        convs = (self.q_conv1d, self.k_conv1d, self.v_conv1d)
        backend = self._resolve(x.device)
        if backend == "cpu-fused" and x.device.type != "cpu":
            raise UserError(f"Gated DeltaNet config field backend='cpu-fused' needs CPU inputs, got {x.device}")
        q, k, v = (conv_silu(r, conv, fused=backend == "cpu-fused") for conv, r in zip(convs, raw))  # (B, T, dim)
        q, k, v, g, beta = self._heads_and_gates(x, q, k, v)
        op = self._fla_op() if backend == "fla" else chunk_gated_delta_rule
        o, state = op(q, k, v, g, beta, None, None, keep_state, True)  # (B, T, H, V)
        out = self._out(x, o)
        if not keep_state:
            return out, None
        windows = [_last_inputs(r, conv.kernel_size[0] - 1) for conv, r in zip(convs, raw)]
        return out, GatedDeltaNetState(*windows, state)

    def decode(self, x: torch.Tensor, state: GatedDeltaNetState) -> tuple[torch.Tensor, GatedDeltaNetState]:
        """One position x (B, 1, D): a step of each conv and of the gated delta rule."""
        check_one_token(x)
        outs, windows = [], []
        projs, convs = (self.q_proj, self.k_proj, self.v_proj), (self.q_conv1d, self.k_conv1d, self.v_conv1d)
        for proj, conv, window in zip(projs, convs, (state.q_conv, state.k_conv, state.v_conv)):
            seen = torch.cat([window, proj(x).transpose(1, 2)], dim=-1)  # (B, dim, conv_size)
            outs.append(F.silu(F.conv1d(seen, conv.weight, None, groups=conv.groups)).transpose(1, 2))  # (B, 1, dim)
            windows.append(seen[..., 1:].clone())
        q, k, v, g, beta = self._heads_and_gates(x, *outs)
        o, new = recurrent_gated_delta_rule(q, k, v, g, beta, None, state.state, True, True)  # (B, 1, H, V)
        return self._out(x, o), GatedDeltaNetState(*windows, new)

    def _heads_and_gates(self, x, q, k, v):
        """q, k (B, T, H, K), v (B, T, H, V); log decay g and beta (B, T, H), at least float32."""
        H, K, V = self.num_heads, self.head_k_dim, self.head_v_dim
        q, k, v = q.unflatten(-1, (H, K)), k.unflatten(-1, (H, K)), v.unflatten(-1, (H, V))
        compute = torch.promote_types(x.dtype, torch.float32)  # float32, float64 in float64 tests
        g = -self.A_log.to(compute).exp() * F.softplus(self.a_proj(x).to(compute) + self.dt_bias.to(compute))
        return q, k, v, g, torch.sigmoid(self.b_proj(x).to(compute))

    def _fla_op(self):
        from fla.ops.gated_delta_rule import chunk_gated_delta_rule as fla_chunk

        def op(q, k, v, g, beta, scale, initial_state, output_final_state, use_qk_l2norm_in_kernel):
            return fla_chunk(
                q=q,
                k=k,
                v=v,
                g=g,
                beta=beta,
                scale=scale,
                initial_state=initial_state,
                output_final_state=output_final_state,
                use_qk_l2norm_in_kernel=use_qk_l2norm_in_kernel,
            )

        return op

    def _out(self, x: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        """o_proj(o_norm(o, g_proj(x))): o (B, T, H, V) -> (B, T, D)."""
        gate = self.g_proj(x).unflatten(-1, (self.num_heads, self.head_v_dim))  # (B, T, H, V)
        return self.o_proj(self.o_norm(o.to(x.dtype), gate).flatten(2))


def _short_conv(dim: int, size: int) -> nn.Conv1d:
    """fla's ShortConvolution: depthwise, causal (padding size-1, cut back), no bias."""
    return nn.Conv1d(dim, dim, size, groups=dim, padding=size - 1, bias=False)


def _inverse_softplus_dt(n: int, dt_min=1e-3, dt_max=0.1, floor=1e-4) -> torch.Tensor:
    """fla's dt init (as mamba_ssm's): softplus(dt_bias) log-uniform in [dt_min, dt_max]."""
    dt = torch.exp(torch.rand(n) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(min=floor)
    return dt + torch.log(-torch.expm1(-dt))


def _last_inputs(x: torch.Tensor, n: int) -> torch.Tensor:
    """The last n rows of x (B, T, C) as a conv window (B, C, n), zero-padded in front; a copy."""
    B, T, C = x.shape
    window = x.new_zeros(B, C, n)
    keep = min(T, n)
    if keep:
        window[..., n - keep :] = x[:, T - keep :].transpose(1, 2)
    return window


class GatedDeltaNetBlock(MixerBlock):
    """The shared pre-norm block around GatedDeltaNet, (B, T, D) -> (B, T, D)."""

    decode_state_grows = False  # conv windows and the (B, H, K, V) state

    def __init__(self, config: GatedDeltaNetConfig):
        super().__init__(config.d_model, GatedDeltaNet(config), config.ffn_mult, config.dropout)


def deltanet_backends() -> list[str]:
    return ["torch", *(["cpu-fused"] if cpu_scan.available() else []), *(["fla"] if _fla_usable() else [])]


@register_model(
    "gated-deltanet",
    family="gated-deltanet",
    config=GatedDeltaNetConfig,
    block=GatedDeltaNetBlock,
    backends=deltanet_backends,
    description="Gated DeltaNet (arXiv 2412.06464), chunked WY form",
)
class GatedDeltaNetLM(PositionalLM):
    """The Gated DeltaNet LM in the paper's shell (learned positions, tied head)."""

    def __init__(self, config: GatedDeltaNetConfig):
        super().__init__(config, GatedDeltaNetBlock)

    @property
    def decode_backend(self) -> str:
        return self.blocks[0].decode_backend
