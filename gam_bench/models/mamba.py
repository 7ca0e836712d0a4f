"""Mamba: the paper's baseline stack and the standard pre-norm residual stack.

The mixer's parameters are named as in mamba_ssm's `Mamba` (in_proj, conv1d, x_proj, dt_proj,
A_log, D, out_proj) and initialised the same way, so weights load across backends:
  torch:     `chunked_selective_scan`, pure PyTorch, runs anywhere;
  cpu-fused: `fused_cpu_selective_scan`, one compiled CPU kernel per scan (models/cpu_scan.py),
             built at first use; CPU inputs only;
  mamba-ssm: mamba_ssm's CUDA kernels (the fused `mamba_inner_fn` when causal-conv1d is
             installed, as mamba_ssm's own Mamba does; otherwise `selective_scan_fn`).
backend="auto" picks mamba-ssm for CUDA inputs when it imports, cpu-fused for CPU inputs when
the kernel builds, else torch, and `backend_reason` says why (a missing compiler or a failed
build also warns). Asking for mamba-ssm or cpu-fused where it cannot run is a UserError, never
a silent fallback.

Decoding (gam_bench.models.decode): per mixer a `MambaState` of the conv window (the last
d_conv-1 conv inputs, (B, E, d_conv-1), zeros before the first token) and the SSM state
(B, E, N), float32 (the scan's dtype), as mamba_ssm's `InferenceParams` holds them. Prefill
runs the scan with return_last_state (the chunked or fused scan on CPU; mamba_ssm's
selective_scan_fn on mamba-ssm, as its Mamba does when given inference_params, not the
fused mamba_inner_fn, which returns no state). Decode is one recurrence step: a torch step,
on cpu-fused one kernel call (`selective_scan_step`: softplus, state update, output, gate), or
on mamba-ssm `selective_state_update` plus causal-conv1d's `causal_conv1d_update` (the
torch conv step when causal-conv1d is missing; `decode_backend` says which ran). Bytes:
B * E * ((d_conv-1) * element size + 4 N) per layer, constant in the context length.

Stacks:
  mamba-paper: the paper's baseline: token + positional embedding, dropout, bare mixers with
               no residual and no norm, final LayerNorm, tied head (official key layout).
  mamba:       as mamba_ssm's MambaLMHeadModel: embedding, x + mixer(RMSNorm(x)) per layer,
               final RMSNorm, tied head, mamba_ssm's init; keys backbone.*/lm_head.* so
               mamba_ssm checkpoints of the same shape load.
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
from gam_bench.models import cpu_scan, short_conv
from gam_bench.models.backends import causal_conv1d_available, mamba_backend_status, mamba_ssm_available
from gam_bench.models.config import LMConfig
from gam_bench.models.decode import DecodeState, check_one_token
from gam_bench.models.lm import PositionalLM
from gam_bench.models.registry import register_model
from gam_bench.models.residual_lm import NormBlock, ResidualShell
from gam_bench.models.selective_scan import (
    chunked_selective_scan,
    fused_cpu_selective_scan,
    mamba_ssm_selective_scan,
)

# What each `backend` value runs, as reported by the `backend` property.
BACKEND_NAMES = {"torch": "torch-chunked-scan", "cpu-fused": "cpu-fused-scan", "mamba-ssm": "mamba-ssm"}


@dataclasses.dataclass
class MambaState(DecodeState):
    """One mixer's state: conv window (B, E, d_conv-1) and SSM state (B, E, N), float32."""

    conv: torch.Tensor
    ssm: torch.Tensor


class MambaConfig(LMConfig):
    """Mamba fields on top of the shared ones. Defaults are the paper's (expand 3)."""

    d_state: int = Field(16, ge=1)
    d_conv: int = Field(4, ge=1)
    expand: int = Field(3, ge=1)
    backend: Literal["auto", "torch", "cpu-fused", "mamba-ssm"] = "auto"


def _check_backend(requested: str) -> None:
    if requested == "mamba-ssm" and not mamba_ssm_available():
        raise UserError(
            "Mamba config field backend='mamba-ssm' is not available on this machine (it needs "
            "a CUDA device and `pip install 'gam-bench[mamba]'`); use backend='torch' or 'auto'"
        )
    if requested == "cpu-fused" and (reason := cpu_scan.unavailable_reason()) is not None:
        raise UserError(
            f"Mamba config field backend='cpu-fused' is not available on this machine ({reason}); "
            "use backend='torch' or 'auto'"
        )


class MambaMixer(nn.Module):
    """mamba_ssm's `Mamba` layer, (B, L, D) -> (B, L, D). dt_rank = ceil(d_model / 16)."""

    def __init__(self, config: MambaConfig):
        super().__init__()
        _check_backend(config.backend)
        self.requested = config.backend
        D, N = config.d_model, config.d_state
        E, R = config.expand * D, math.ceil(D / 16)
        self.d_inner, self.d_state, self.dt_rank = E, N, R
        self.in_proj = nn.Linear(D, 2 * E, bias=False)
        self.conv1d = nn.Conv1d(E, E, config.d_conv, groups=E, padding=config.d_conv - 1)
        self.x_proj = nn.Linear(E, R + 2 * N, bias=False)
        self.dt_proj = nn.Linear(R, E, bias=True)
        _init_dt_proj(self.dt_proj, R)
        A = torch.arange(1, N + 1, dtype=torch.float32).repeat(E, 1)  # (E, N): S4D-real
        self.A_log = nn.Parameter(torch.log(A))
        self.A_log._no_weight_decay = True
        self.D = nn.Parameter(torch.ones(E))
        self.D._no_weight_decay = True
        self.out_proj = nn.Linear(E, D, bias=False)

    @property
    def backend(self) -> str:
        """What runs for inputs on the device the weights are on."""
        return BACKEND_NAMES[self._resolve(self.in_proj.weight.device)]

    @property
    def backend_reason(self) -> str:
        """Which path runs for inputs on the weights' device and why (the `backend_reason` column)."""
        device = self.in_proj.weight.device
        if self.requested in ("torch", "cpu-fused"):
            return f"{BACKEND_NAMES[self.requested]}: backend '{self.requested}' requested"
        if device.type == "cpu":  # checked first: a CPU cell never imports mamba_ssm
            reason = cpu_scan.unavailable_reason()
            if reason is None:
                return "cpu-fused-scan: inputs on cpu (mamba-ssm kernels are CUDA-only)"
            return f"torch-chunked-scan: inputs on cpu, fused CPU scan unavailable ({reason})"
        if device.type != "cuda":
            return f"torch-chunked-scan: inputs on {device.type} (mamba-ssm kernels are CUDA-only)"
        _available, path, reason = mamba_backend_status()
        return f"{path}: {reason}" if reason else path

    def _resolve(self, device: torch.device) -> str:
        if self.requested != "auto":
            return self.requested
        if device.type == "cuda":
            return "mamba-ssm" if mamba_ssm_available() else "torch"
        return "cpu-fused" if device.type == "cpu" and cpu_scan.available() else "torch"

    @staticmethod
    def _check_cpu(device: torch.device) -> None:
        if device.type != "cpu":
            raise UserError(f"Mamba config field backend='cpu-fused' needs CPU inputs, got {device}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        backend = self._resolve(x.device)
        A = -torch.exp(self.A_log.float())  # (E, N)
        if backend == "cpu-fused":
            return self._fused_path(x, A)
        xz = self.in_proj(x).transpose(1, 2)  # (B, 2E, L)
        if backend == "torch":
            return self._scan_path(xz, A, chunked_selective_scan)
        if x.device.type != "cuda":
            raise UserError(f"Mamba config field backend='mamba-ssm' needs CUDA inputs, got {x.device}")
        return self._mamba_ssm(xz, A)

    def _scan_path(self, xz: torch.Tensor, A: torch.Tensor, scan, return_state: bool = False):
        """conv -> SiLU -> input-dependent (dt, B, C) -> selective scan -> gate -> out_proj.
        -> (B, L, D); with return_state, (out, MambaState after the last position)."""
        L, N = xz.shape[-1], self.d_state
        xs, z = xz.chunk(2, dim=1)  # (B, E, L) each
        conv_state = self._last_conv_inputs(xs) if return_state else None
        xs = F.silu(self.conv1d(xs)[..., :L])  # (B, E, L), causal
        dt, B, C = self.x_proj(xs.transpose(1, 2)).split([self.dt_rank, N, N], dim=-1)  # (B, L, *)
        dt = F.linear(dt, self.dt_proj.weight).transpose(1, 2)  # (B, E, L); bias added in scan
        y = scan(
            xs,
            dt,
            A,
            B.transpose(1, 2),
            C.transpose(1, 2),
            self.D.float(),
            z=z,
            delta_bias=self.dt_proj.bias.float(),
            delta_softplus=True,
            **({"return_last_state": True} if return_state else {}),
        )  # (B, E, L), or (y, last state (B, E, N))
        if return_state:
            y, ssm_state = y
            return self.out_proj(y.transpose(1, 2)), MambaState(conv_state, ssm_state.float())
        return self.out_proj(y.transpose(1, 2))  # (B, L, D)

    def _fused_path(self, x: torch.Tensor, A: torch.Tensor, return_state: bool = False):
        """`_scan_path` on the fused CPU kernels, time-major throughout (each (B, L, E) tensor is
        what nn.Linear produces, so nothing is transposed or copied): the input projection as
        two products (x and z; one product split in two would join their gradients with a
        cat), `short_conv.conv_silu` (the fused conv), then `fused_cpu_selective_scan`. x (B, L, D) -> (B, L, D)."""
        self._check_cpu(x.device)
        E, N = self.d_inner, self.d_state
        xs = F.linear(x, self.in_proj.weight[:E])  # (B, L, E)
        z = F.linear(x, self.in_proj.weight[E:])  # (B, L, E)
        conv_state = self._last_conv_inputs(xs.transpose(1, 2)) if return_state else None
        u = short_conv.conv_silu(xs, self.conv1d, fused=True)  # (B, L, E), causal; float32 under autocast too
        dt, B, C = self.x_proj(u).split([self.dt_rank, N, N], dim=-1)  # (B, L, *)
        dt = F.linear(dt, self.dt_proj.weight)  # (B, L, E); bias added in the scan
        y = fused_cpu_selective_scan(
            *(t.transpose(1, 2) for t in (u, dt)),
            A,
            *(t.transpose(1, 2) for t in (B, C)),
            self.D.float(),
            z=z.transpose(1, 2),
            delta_bias=self.dt_proj.bias.float(),
            delta_softplus=True,
            return_last_state=return_state,
        )  # (B, E, L) views of (B, L, E) memory, or (y, last state (B, E, N))
        if return_state:
            y, ssm_state = y
            return self.out_proj(y.transpose(1, 2)), MambaState(conv_state, ssm_state.float())
        return self.out_proj(y.transpose(1, 2))  # (B, L, D)

    def _mamba_ssm(self, xz: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        """mamba_ssm's kernels: the fused path when causal-conv1d imports, as its Mamba does."""
        if not causal_conv1d_available():
            return self._scan_path(xz, A, mamba_ssm_selective_scan())
        from mamba_ssm.ops.selective_scan_interface import mamba_inner_fn

        out = mamba_inner_fn(
            xz,
            self.conv1d.weight,
            self.conv1d.bias,
            self.x_proj.weight,
            self.dt_proj.weight,
            self.out_proj.weight,
            self.out_proj.bias,
            A,
            None,
            None,
            self.D.float(),
            delta_bias=self.dt_proj.bias.float(),
            delta_softplus=True,
        )  # (B, L, D)
        return out

    @property
    def decode_backend(self) -> str:
        """What `decode` runs for inputs on the device the weights are on."""
        backend = self._resolve(self.in_proj.weight.device)
        if backend in ("torch", "cpu-fused"):
            return f"{backend}-step"
        return "mamba-ssm-step+" + ("causal-conv1d-update" if causal_conv1d_available() else "torch-conv-step")

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, MambaState]:
        """forward(x) for x (B, L, D), and the conv and SSM states after it."""
        backend = self._resolve(x.device)
        A = -torch.exp(self.A_log.float())  # (E, N)
        if backend == "cpu-fused":
            return self._fused_path(x, A, return_state=True)
        xz = self.in_proj(x).transpose(1, 2)  # (B, 2E, L)
        if backend == "torch":
            return self._scan_path(xz, A, chunked_selective_scan, return_state=True)
        if x.device.type != "cuda":
            raise UserError(f"Mamba config field backend='mamba-ssm' needs CUDA inputs, got {x.device}")
        return self._scan_path(xz, A, mamba_ssm_selective_scan(), return_state=True)

    def decode(self, x: torch.Tensor, state: MambaState) -> tuple[torch.Tensor, MambaState]:
        """One recurrence step for x (B, 1, D). The mamba-ssm kernels update `state` in place."""
        check_one_token(x)
        backend = self._resolve(x.device)
        xs, z = self.in_proj(x[:, 0]).chunk(2, dim=-1)  # (B, E) each
        A = -torch.exp(self.A_log.float())  # (E, N)
        if backend == "torch":
            y, state = self._torch_step(xs, z, A, state)
        elif backend == "cpu-fused":
            y, state = self._fused_step(xs, z, A, state, x.device)
        else:
            y = self._mamba_ssm_step(xs, z, A, state)
        return self.out_proj(y).unsqueeze(1), state  # (B, 1, D)

    def _last_conv_inputs(self, xs: torch.Tensor) -> torch.Tensor:
        """The last d_conv-1 conv inputs of xs (B, E, L), zero-padded in front; a copy."""
        B, E, L = xs.shape
        n = min(L, self.conv1d.kernel_size[0] - 1)
        window = xs.new_zeros(B, E, self.conv1d.kernel_size[0] - 1)  # (B, E, d_conv-1)
        window[..., window.shape[-1] - n :] = xs[..., L - n :]
        return window

    def _conv_step(self, xs: torch.Tensor, conv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """SiLU(conv) at the newest position: xs (B, E), window (B, E, d_conv-1) -> (B, E), new window."""
        seen = torch.cat([conv, xs.unsqueeze(-1)], dim=-1)  # (B, E, d_conv)
        out = F.conv1d(seen, self.conv1d.weight, self.conv1d.bias, groups=self.d_inner)  # (B, E, 1)
        return F.silu(out[..., 0]), seen[..., 1:].clone()

    def _dt_b_c(self, xc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(dt without bias (B, E), B (B, N), C (B, N)) of the conv output xc (B, E)."""
        dt, B, C = self.x_proj(xc).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        return F.linear(dt, self.dt_proj.weight), B, C

    def _torch_step(self, xs, z, A, state: MambaState) -> tuple[torch.Tensor, MambaState]:
        """One step of the scan in its dtype (float32), as chunked_selective_scan computes it."""
        xc, conv = self._conv_step(xs, state.conv)  # (B, E)
        dt, B, C = self._dt_b_c(xc)
        compute = torch.promote_types(xc.dtype, torch.float32)
        with torch.autocast(xc.device.type, enabled=False):
            u = xc.to(compute)  # (B, E)
            delta = F.softplus(dt.to(compute) + self.dt_proj.bias.to(compute))  # (B, E)
            decay = torch.exp(delta.unsqueeze(-1) * A.to(compute))  # (B, E, N)
            h = ((delta * u).unsqueeze(-1) * B.to(compute).unsqueeze(1)).addcmul_(decay, state.ssm)  # (B, E, N)
            y = torch.matmul(h, C.to(compute).unsqueeze(-1)).squeeze(-1)  # (B, E): sum_n h * C
            y = (y + u * self.D.to(compute)) * F.silu(z.to(compute))
        return y.to(xc.dtype), MambaState(conv, h)

    def _fused_step(self, xs, z, A, state: MambaState, device: torch.device) -> tuple[torch.Tensor, MambaState]:
        """One step as `_torch_step` computes it, the scan part in one kernel call (float32)."""
        self._check_cpu(device)
        xc, conv = self._conv_step(xs, state.conv)  # (B, E)
        dt, B, C = self._dt_b_c(xc)
        compute = torch.promote_types(xc.dtype, torch.float32)
        with torch.autocast(xc.device.type, enabled=False):
            y, h = cpu_scan.selective_scan_step(
                *(t.to(compute) for t in (xc, dt, self.dt_proj.bias, A, B, C, self.D, z)), state.ssm
            )  # (B, E), (B, E, N)
        return y.to(xc.dtype), MambaState(conv, h)

    def _mamba_ssm_step(self, xs, z, A, state: MambaState) -> torch.Tensor:
        """mamba_ssm's Mamba.step: causal_conv1d_update and selective_state_update, in place."""
        from mamba_ssm.ops.triton.selective_state_update import selective_state_update

        if causal_conv1d_available():
            from causal_conv1d import causal_conv1d_update

            weight = self.conv1d.weight.squeeze(1)  # (E, d_conv)
            xc = causal_conv1d_update(xs, state.conv, weight, self.conv1d.bias, "silu")  # (B, E)
        else:
            xc, state.conv = self._conv_step(xs, state.conv)
        dt, B, C = self._dt_b_c(xc)
        return selective_state_update(
            state.ssm, xc, dt, A, B, C, self.D.float(), z=z, dt_bias=self.dt_proj.bias.float(), dt_softplus=True
        )  # (B, E)


def _init_dt_proj(dt_proj: nn.Linear, dt_rank: int, dt_min=1e-3, dt_max=0.1, floor=1e-4) -> None:
    """As mamba_ssm: weight ~ U(+-dt_rank^-0.5); softplus(bias) = dt, log-uniform in
    [dt_min, dt_max]."""
    std = dt_rank**-0.5
    nn.init.uniform_(dt_proj.weight, -std, std)
    n = dt_proj.out_features
    dt = torch.exp(torch.rand(n) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    dt = dt.clamp(min=floor)
    with torch.no_grad():
        dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse of softplus
    dt_proj.bias._no_reinit = True


class MambaResidualBlock(NormBlock):
    """Standard Mamba block (mamba_ssm's Block): x + mixer(RMSNorm(x)), with the conv
    (B, E, d_conv-1) and SSM (B, E, N) states of a MambaMixer. (B, L, D) -> (B, L, D)."""

    def __init__(self, config: MambaConfig):
        super().__init__(config.d_model, MambaMixer(config))


class _Backbone(nn.Module):
    """mamba_ssm's MixerModel: embedding, residual blocks, final RMSNorm."""

    def __init__(self, config: MambaConfig):
        super().__init__()
        self.embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.layers = nn.ModuleList(MambaResidualBlock(config) for _ in range(config.n_layers))
        self.norm_f = nn.RMSNorm(config.d_model, eps=1e-5)


def _backends() -> list[str]:
    """The backends that can run here (cpu-fused only once its kernel has built: a first call builds it)."""
    return ["torch"] + ["cpu-fused"] * cpu_scan.available() + ["mamba-ssm"] * mamba_ssm_available()


@register_model(
    "mamba",
    family="mamba",
    config=MambaConfig,
    block=MambaResidualBlock,
    backends=_backends,
    description="Mamba, pre-norm residual stack (as MambaLMHeadModel)",
)
class MambaLM(ResidualShell):
    """Causal LM: forward(idx (B, T)) -> logits (B, T, V). No positions, so no length cap."""

    def __init__(self, config: MambaConfig):
        super().__init__()
        self.config = config
        self.backbone = _Backbone(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self._init_weights(config.n_layers)
        self.lm_head.weight = self.backbone.embedding.weight  # tied

    def _init_weights(self, n_layers: int) -> None:
        """mamba_ssm's init: embedding N(0, 0.02); out_proj kaiming-uniform / sqrt(n_layers)."""
        nn.init.normal_(self.backbone.embedding.weight, std=0.02)
        for layer in self.backbone.layers:
            weight = layer.mixer.out_proj.weight
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
            with torch.no_grad():
                weight /= math.sqrt(n_layers)


@register_model(
    "mamba-paper",
    family="mamba",
    config=MambaConfig,
    block=MambaMixer,
    backends=_backends,
    description="The paper's Mamba baseline: no residual, no norm",
)
class MambaPaper(PositionalLM):
    """The paper's Mamba stack; keys as the official checkpoint (blocks.{i}.in_proj...)."""

    @property
    def decode_backend(self) -> str:
        return self.blocks[0].decode_backend

    def __init__(self, config: MambaConfig):
        super().__init__(config, MambaMixer)
