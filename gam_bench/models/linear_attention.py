"""The layer GLA and RetNet share: projections, a gated linear-attention op, a gated RMSNorm.

    q, k = q_proj(x), k_proj(x)   (B, T, H, K)       v = v_proj(x)   (B, T, H, V)
    o, S = op(q, k, v, gate)      (B, T, H, V)       the family's op and gate (GLA: a decay
                                                     per key dim from gk_proj; RetNet: a fixed
                                                     decay per head, after rotary q, k)
    out  = o_proj(RMSNorm(o) * silu(g_proj(x)))      the norm per head over V (g_norm)

Key names are flash-linear-attention's (q_proj, k_proj, v_proj, g_proj, g_norm, o_proj, and
GLA's gk_proj); fla's fused norm-and-gate is saved as `g_norm_swish_gate`, and such a key
loads into g_norm.

Backends (`backend` config field), as Mamba's:
  torch: the pure-PyTorch chunked op (gam_bench.models.ops.gla), everywhere;
  fla:   flash-linear-attention's chunked Triton kernel for the same op and arguments (CUDA,
         `pip install 'gam-bench[fla]'`);
  auto:  fla for CUDA inputs when it imports, else torch. Asking for fla where it cannot run
         is a UserError, never a silent fallback; `backend_reason` says which ran and why.
Decoding: the state is the op's (B, H, K, V) float32 matrix, constant in the context length
(B * H * K * V * 4 bytes per layer, plus what a family adds); decode is one step of the
recurrence in torch (`gla_step`) on every backend.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gam_bench.errors import UserError
from gam_bench.models.backends import fla_available, fla_reason
from gam_bench.models.decode import DecodeState, check_one_token

BACKEND_NAMES = {"torch": "torch-chunked", "fla": "fla-chunk"}


@dataclasses.dataclass
class LinearAttentionState(DecodeState):
    """The op's state (B, H, K, V), float32."""

    state: torch.Tensor


def kernel_device(device: torch.device) -> bool:
    """Whether fla's kernels can take inputs on `device` (CUDA only)."""
    return device.type == "cuda"


class GatedLinearMixer(nn.Module):
    """Base of the GLA and RetNet layers, (B, T, D) -> (B, T, D). Subclasses set FLA_MODULE,
    FLA_OP, FAMILY and implement `_qkv_gate` and `_torch_op`."""

    FLA_MODULE = ""  # e.g. "fla.ops.gla"
    FLA_OP = ""  # e.g. "chunk_gla"
    FAMILY = ""

    def __init__(self, d_model: int, n_heads: int, key_dim: int, value_dim: int, backend: str, chunk_size: int):
        super().__init__()
        if key_dim % n_heads or value_dim % n_heads:
            raise UserError(
                f"{self.FAMILY} config: key dim {key_dim} and value dim {value_dim} must divide by n_heads={n_heads}"
            )
        if backend == "fla" and not fla_available(self.FLA_MODULE):
            raise UserError(
                f"{self.FAMILY} config field backend='fla' is not available on this machine "
                f"({fla_reason(self.FLA_MODULE)}; it needs a CUDA device and `pip install 'gam-bench[fla]'`); "
                "use backend='torch' or 'auto'"
            )
        self.requested, self.chunk_size = backend, chunk_size
        self.n_heads, self.head_k_dim, self.head_v_dim = n_heads, key_dim // n_heads, value_dim // n_heads
        self.q_proj = nn.Linear(d_model, key_dim, bias=False)
        self.k_proj = nn.Linear(d_model, key_dim, bias=False)
        self.v_proj = nn.Linear(d_model, value_dim, bias=False)
        self.g_proj = nn.Linear(d_model, value_dim, bias=False)

    def _finish_init(self, d_model: int, value_dim: int) -> None:
        """The output norm and projection, created last as in fla."""
        self.o_proj = nn.Linear(value_dim, d_model, bias=False)
        self.g_norm = nn.RMSNorm(self.head_v_dim, eps=1e-5)
        self.register_load_state_dict_pre_hook(_rename_fused_norm)

    def _resolve(self, device: torch.device) -> str:
        if self.requested == "auto":
            return "fla" if kernel_device(device) and fla_available(self.FLA_MODULE) else "torch"
        return self.requested

    @property
    def backend(self) -> str:
        """What runs for inputs on the device the weights are on."""
        return BACKEND_NAMES[self._resolve(self.q_proj.weight.device)]

    @property
    def backend_reason(self) -> str:
        """Which path runs for inputs on the weights' device, and why (the `backend_reason` column)."""
        device = self.q_proj.weight.device
        if self.requested == "torch":
            return "torch-chunked: backend 'torch' requested"
        if not kernel_device(device):
            return f"torch-chunked: inputs on {device.type} (fla kernels are CUDA-only)"
        reason = fla_reason(self.FLA_MODULE)
        return f"torch-chunked: {reason}" if reason else "fla-chunk"

    decode_backend = "torch-step"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._mix(x, None, False)[0]

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, LinearAttentionState]:
        """forward(x) for x (B, T, D), and the state after it."""
        out, state = self._mix(x, None, True)
        return out, self._make_state(state, x.shape[1])

    def decode(self, x: torch.Tensor, state: LinearAttentionState) -> tuple[torch.Tensor, LinearAttentionState]:
        """One step of the recurrence for x (B, 1, D)."""
        check_one_token(x)
        from gam_bench.models.ops.gla import gla_step

        position = getattr(state, "position", None)
        q, k, v, gate = self._qkv_gate(x, offset=0 if position is None else position)  # (B, 1, H, *)
        gk = gate if gate.dim() == 4 else gate.unsqueeze(-1).expand_as(q)  # (B, 1, H, K)
        o, new = gla_step(q[:, 0], k[:, 0], v[:, 0], gk[:, 0], state.state, self.head_k_dim**-0.5)  # (B, H, V)
        return self._out(x, o.unsqueeze(1)), self._make_state(new, None if position is None else position + 1)

    def _make_state(self, state: torch.Tensor, position) -> LinearAttentionState:
        """The decode state holding the op's state after `position` tokens (families add fields)."""
        return LinearAttentionState(state)

    def _mix(self, x: torch.Tensor, initial_state, output_final_state: bool):
        backend = self._resolve(x.device)
        if backend == "fla" and not kernel_device(x.device):
            raise UserError(f"{self.FAMILY} config field backend='fla' needs CUDA inputs, got {x.device}")
        q, k, v, gate = self._qkv_gate(x, offset=0)  # (B, T, H, *)
        op = self._fla_op() if backend == "fla" else self._torch_op
        scale = self.head_k_dim**-0.5
        o, state = op(q, k, v, gate, scale=scale, initial_state=initial_state, output_final_state=output_final_state)
        return self._out(x, o), state

    def _fla_op(self) -> Callable:
        fn = getattr(importlib.import_module(self.FLA_MODULE), self.FLA_OP)
        return lambda q, k, v, g, **kw: fn(q=q, k=k, v=v, g=g, **kw)

    def _out(self, x: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        """o_proj(RMSNorm(o) * silu(g_proj(x))): o (B, T, H, V) -> (B, T, D)."""
        o = self.g_norm(o.to(x.dtype)).flatten(2)  # (B, T, H * V)
        return self.o_proj(o * F.silu(self.g_proj(x)))

    def _heads(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        return x.unflatten(-1, (self.n_heads, dim))  # (B, T, H, dim)

    def _qkv_gate(self, x: torch.Tensor, offset) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def _torch_op(self, q, k, v, gate, **kw):
        raise NotImplementedError


def _rename_fused_norm(module, state_dict, prefix, *args) -> None:
    """fla saves the fused norm-and-gate as g_norm_swish_gate; it is g_norm here."""
    fused = prefix + "g_norm_swish_gate.weight"
    if fused in state_dict:
        state_dict[prefix + "g_norm.weight"] = state_dict.pop(fused)
