"""Mamba2 (arXiv 2405.21060): the SSD mixer in mamba_ssm's pre-norm residual stack.

The mixer's parameters are named and initialised as mamba_ssm's `Mamba2` (in_proj, conv1d,
dt_bias, A_log, D, norm, out_proj; rmsnorm=True, norm_before_gate=False, no biases but the
conv's), so mamba_ssm checkpoints of the same shape load. in_proj gives [z | x B C | dt]; the
depthwise causal conv and SiLU act on x B C; the scan is SSD with a scalar decay per head,
y = SSD(q=C, k=B, v=x dt, g=A dt) + D x; then y = norm(y, z) and out_proj. Backends:
  torch:     `gam_bench.models.ops.ssd.chunk_ssd`, the chunked dual form, and nn.Conv1d + SiLU,
             pure PyTorch;
  cpu-fused: the same scan, with the conv + SiLU of Mamba's fused CPU kernel
             (gam_bench.models.short_conv: the same math, faster on the CPU: docs/results/field.md);
  mamba-ssm: mamba_ssm's `mamba_chunk_scan_combined` (triton, CUDA) for the scan.
backend="auto" picks mamba-ssm for CUDA inputs when it imports, cpu-fused for CPU inputs when the
kernel builds, else torch, and records why (`backend_reason`); asking for a backend where it
cannot run is a UserError, never a fallback.

Decoding: per layer a `Mamba2State`: the conv window (B, conv_dim, d_conv-1) of x B C inputs
and the SSM state (B, H, N, P) in float32 (fla's (K, V) layout; mamba_ssm keeps (B, H, P, N)).
A decode step is `recurrent_ssd` for one position (both backends). Bytes per layer:
B * (conv_dim * (d_conv-1) * element size + 4 H N P), constant in the context length.

Paper configuration (d_model 512, 6 layers, vocab 10k): mamba_ssm's defaults (d_state 128,
d_conv 4, ngroups 1) except expand 3.5 (mamba_ssm: 2), which brings the LM to GAM's 22.6M
parameters (expand 2: 15.4M), and headdim 32 (mamba_ssm: 64), so that d_inner = 3.5 d_model is a
whole number of heads for every d_model that is a multiple of 64 (the CPU profiles' 64).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from gam_bench.errors import UserError
from gam_bench.models import backends, cpu_scan
from gam_bench.models.config import LMConfig
from gam_bench.models.decode import DecodeState, check_one_token
from gam_bench.models.gated_norm import GatedRMSNorm
from gam_bench.models.ops.ssd import chunk_ssd, recurrent_ssd
from gam_bench.models.registry import register_model
from gam_bench.models.residual_lm import NormBlock, ResidualLM
from gam_bench.models.short_conv import conv_silu

BACKEND_NAMES = {"torch": "torch-chunked-ssd", "cpu-fused": "cpu-conv+chunked-ssd", "mamba-ssm": backends.MAMBA_SSM_SSD}
KERNEL_CHUNK_SIZE = 256  # mamba_ssm's Mamba2 default


class Mamba2Config(LMConfig):
    """Mamba2 fields on top of the shared ones (see the module docstring for the defaults)."""

    d_state: int = Field(128, ge=1)
    d_conv: int = Field(4, ge=1)
    expand: float = Field(3.5, gt=0)
    headdim: int = Field(32, ge=1)
    ngroups: int = Field(1, ge=1)
    backend: Literal["auto", "torch", "cpu-fused", "mamba-ssm"] = "auto"

    @model_validator(mode="after")
    def _whole_heads(self) -> Mamba2Config:
        d_inner = int(self.expand * self.d_model)
        if d_inner % self.headdim:
            raise ValueError(f"d_inner = int(expand * d_model) = {d_inner} is not a multiple of headdim={self.headdim}")
        if (d_inner // self.headdim) % self.ngroups:
            raise ValueError(f"{d_inner // self.headdim} heads are not a multiple of ngroups={self.ngroups}")
        return self


@dataclasses.dataclass
class Mamba2State(DecodeState):
    """Conv window (B, conv_dim, d_conv-1) and SSM state (B, H, N, P), float32."""

    conv: torch.Tensor
    ssm: torch.Tensor


def _check_backend(requested: str) -> None:
    if requested == "mamba-ssm" and backends.ssd_kernel_reason() is not None:
        raise UserError(
            f"Mamba2 config field backend='mamba-ssm' is not available on this machine "
            f"({backends.ssd_kernel_reason()}); use backend='torch' or 'auto'"
        )
    if requested == "cpu-fused" and not cpu_scan.available():
        raise UserError(
            f"Mamba2 config field backend='cpu-fused' is not available on this machine "
            f"({cpu_scan.unavailable_reason()}); use backend='torch' or 'auto'"
        )


class Mamba2Mixer(nn.Module):
    """mamba_ssm's `Mamba2` layer, (B, L, D) -> (B, L, D)."""

    def __init__(self, config: Mamba2Config):
        super().__init__()
        _check_backend(config.backend)
        self.requested = config.backend
        D, N, G = config.d_model, config.d_state, config.ngroups
        E = int(config.expand * D)
        H = E // config.headdim
        self.d_inner, self.d_state, self.ngroups, self.nheads, self.headdim = E, N, G, H, config.headdim
        self.conv_dim = E + 2 * G * N
        self.in_proj = nn.Linear(D, 2 * E + 2 * G * N + H, bias=False)
        self.conv1d = nn.Conv1d(
            self.conv_dim, self.conv_dim, config.d_conv, groups=self.conv_dim, padding=config.d_conv - 1
        )
        self.dt_bias = nn.Parameter(_inverse_softplus_dt(H))
        self.A_log = nn.Parameter(torch.empty(H).uniform_(1, 16).log())
        self.D = nn.Parameter(torch.ones(H))
        for p in (self.dt_bias, self.A_log, self.D):
            p._no_weight_decay = True
        self.norm = GatedRMSNorm(E, eps=1e-5, norm_before_gate=False, group_size=E // G)
        self.out_proj = nn.Linear(E, D, bias=False)

    @property
    def backend(self) -> str:
        """What runs for inputs on the device the weights are on."""
        return BACKEND_NAMES[self._resolve(self.in_proj.weight.device)]

    @property
    def backend_reason(self) -> str:
        """Which path runs for inputs on the weights' device and why (the `backend_reason` column)."""
        device = self.in_proj.weight.device
        return backends.fused_conv_reason(
            self.requested, device, BACKEND_NAMES, "mamba-ssm", backends.ssd_kernel_reason
        )

    @property
    def decode_backend(self) -> str:
        return "torch-step"

    def _resolve(self, device: torch.device) -> str:
        if self.requested != "auto":
            return self.requested
        if device.type == "cuda":
            return "mamba-ssm" if backends.ssd_kernel_reason() is None else "torch"
        return "cpu-fused" if device.type == "cpu" and cpu_scan.available() else "torch"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prefill(x, keep_state=False)[0]

    def prefill(self, x: torch.Tensor, keep_state: bool = True) -> tuple[torch.Tensor, Mamba2State | None]:
        """forward(x) for x (B, L, D), and (keep_state) the conv and SSM states after it."""
        z, xbc, dt = self._in_proj(x)  # (B, L, *)
        conv = _last_inputs(xbc, self.conv1d.kernel_size[0] - 1) if keep_state else None
        backend = self._resolve(x.device)
        if backend == "cpu-fused" and x.device.type != "cpu":
            raise UserError(f"Mamba2 config field backend='cpu-fused' needs CPU inputs, got {x.device}")
        xbc = conv_silu(xbc, self.conv1d, fused=backend == "cpu-fused")  # (B, L, C)
        scan = self._kernel_scan if backend == "mamba-ssm" else self._torch_scan
        y, ssm = scan(xbc, dt, None, keep_state)  # (B, L, E)
        out = self.out_proj(self.norm(y, z))  # (B, L, D)
        return out, (Mamba2State(conv, ssm) if keep_state else None)

    def _in_proj(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z (B, L, E), x B C (B, L, conv_dim), dt (B, L, H): in_proj as three products, whose
        gradients add into x's (one product split in three would join them with a copy)."""
        sizes = [self.d_inner, self.conv_dim, self.nheads]
        return tuple(F.linear(x, w) for w in self.in_proj.weight.split(sizes))

    def decode(self, x: torch.Tensor, state: Mamba2State) -> tuple[torch.Tensor, Mamba2State]:
        """One position x (B, 1, D): a conv step and one SSD step."""
        check_one_token(x)
        z, xbc, dt = self.in_proj(x).split([self.d_inner, self.conv_dim, self.nheads], dim=-1)  # (B, 1, *)
        seen = torch.cat([state.conv, xbc.transpose(1, 2)], dim=-1)  # (B, conv_dim, d_conv)
        xbc = F.silu(F.conv1d(seen, self.conv1d.weight, self.conv1d.bias, groups=self.conv_dim)).transpose(1, 2)
        y, ssm = self._torch_scan(xbc, dt, state.ssm, True, step=True)  # (B, 1, E)
        return self.out_proj(self.norm(y, z)), Mamba2State(seen[..., 1:].clone(), ssm)

    def _split_heads(self, xbc: torch.Tensor):
        """x (B, L, H, P), B and C (B, L, G, N) of the conv output."""
        B, L, _ = xbc.shape
        xs, Bm, Cm = xbc.split([self.d_inner, self.ngroups * self.d_state, self.ngroups * self.d_state], dim=-1)
        groups = (B, L, self.ngroups, self.d_state)
        return xs.reshape(B, L, self.nheads, self.headdim), Bm.reshape(groups), Cm.reshape(groups)

    def _torch_scan(self, xbc, dt, initial_state, keep_state, step=False):
        """SSD in fla's layout: q = C, k = B, v = x dt, g = A dt, scale 1; + D x. -> (B, L, E), state."""
        xs, Bm, Cm = self._split_heads(xbc)
        compute = torch.promote_types(xs.dtype, torch.float32)
        dt = F.softplus(dt.to(compute) + self.dt_bias.to(compute))  # (B, L, H)
        g = -torch.exp(self.A_log.to(compute)) * dt  # (B, L, H), log decay
        op = recurrent_ssd if step else chunk_ssd
        y, ssm = op(Cm, Bm, xs * dt.unsqueeze(-1).to(xs.dtype), g, 1.0, initial_state, keep_state)  # (B, L, H, P)
        y = y + xs * self.D.to(xs.dtype).unsqueeze(-1)
        return y.flatten(2), ssm

    def _kernel_scan(self, xbc, dt, initial_state, keep_state):
        """mamba_ssm's mamba_chunk_scan_combined; its final state (B, H, P, N) -> (B, H, N, P)."""
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

        xs, Bm, Cm = self._split_heads(xbc)
        out = mamba_chunk_scan_combined(
            xs,
            dt,
            -torch.exp(self.A_log.float()),
            Bm,
            Cm,
            chunk_size=KERNEL_CHUNK_SIZE,
            D=self.D,
            dt_bias=self.dt_bias,
            dt_softplus=True,
            return_final_states=keep_state,
        )
        y, final = out if keep_state else (out, None)
        return y.flatten(2), (final.transpose(-1, -2).float() if keep_state else None)


def _inverse_softplus_dt(n: int, dt_min=1e-3, dt_max=0.1, floor=1e-4) -> torch.Tensor:
    """mamba_ssm's dt init: softplus(dt_bias) = dt, log-uniform in [dt_min, dt_max]."""
    dt = torch.exp(torch.rand(n) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(min=floor)
    return dt + torch.log(-torch.expm1(-dt))


def _last_inputs(x: torch.Tensor, n: int) -> torch.Tensor:
    """The last n rows of x (B, L, C) as a conv window (B, C, n), zero-padded in front; a copy."""
    B, L, C = x.shape
    window = x.new_zeros(B, C, n)
    keep = min(L, n)
    if keep:
        window[..., n - keep :] = x[:, L - keep :].transpose(1, 2)
    return window


class Mamba2Block(NormBlock):
    """mamba_ssm's Block around a Mamba2 mixer: x + mixer(RMSNorm(x)). (B, L, D) -> (B, L, D)."""

    def __init__(self, config: Mamba2Config):
        super().__init__(config.d_model, Mamba2Mixer(config))


def _backends() -> list[str]:
    names = ["torch", *(["cpu-fused"] if cpu_scan.available() else [])]
    return names + (["mamba-ssm"] if backends.ssd_kernel_reason() is None else [])


@register_model(
    "mamba2",
    family="mamba2",
    config=Mamba2Config,
    block=Mamba2Block,
    backends=_backends,
    description="Mamba2, SSD (arXiv 2405.21060), pre-norm residual stack",
)
class Mamba2LM(ResidualLM):
    """mamba_ssm's MambaLMHeadModel with Mamba2 mixers; keys backbone.*, lm_head.*."""

    def __init__(self, config: Mamba2Config):
        super().__init__(config, [Mamba2Block(config) for _ in range(config.n_layers)])
        for block in self.backbone.layers:  # mamba_ssm's rescaled out_proj init
            weight = block.mixer.out_proj.weight
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
            with torch.no_grad():
                weight /= math.sqrt(config.n_layers)
