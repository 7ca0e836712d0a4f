"""Compiled against eager on the same inputs: `check_parity` and the row's max_rel_err / parity_ok.

One eager and one compiled step on the same inputs (same seed, same weights); forward outputs
and, in train modes, the gradients of the inputs and of every parameter. No optimizer step is
taken. `max_rel_err` is judged against `PARITY_TOL[dtype]`. With active dropout (train mode,
p > 0) outputs are random and parity is reported as not comparable (None) with the reason,
never as a pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

# max_rel_err = max |compiled - eager| / max |eager| per tensor, the worst over all tensors compared.
# fp32: inductor reorders reductions and fuses ops, ~1e-6 at small shapes, ~1e-5 over long sums;
# bf16/fp16 (autocast): one rounding of the mantissa (8 / 11 bits) at every fused boundary.
PARITY_TOL = {"float32": 1e-4, "bfloat16": 5e-2, "float16": 1e-2}


@dataclass(frozen=True)
class Parity:
    """Compiled vs eager on one step: the row's max_rel_err and parity_ok (None: not comparable, see note)."""

    max_rel_err: float | None
    tol: float
    ok: bool | None
    note: str = ""


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| / max |expected| (norm-wise, so elements near zero do not blow it up)."""
    actual, expected = actual.detach().double(), expected.detach().double()
    scale = expected.abs().max().item()
    diff = (actual - expected).abs().max().item()
    return diff / scale if scale > 0 else diff


def active_dropout(module: nn.Module) -> bool:
    """True when a dropout module with p > 0 is in training mode (outputs then differ run to run)."""
    return any(
        isinstance(m, nn.modules.dropout._DropoutNd) and m.training and m.p > 0 for m in module.modules()
    ) or any(getattr(m, "p_drop", 0) > 0 and m.training for m in module.modules())


def step_outputs(
    module: Callable[..., torch.Tensor],
    params: Sequence[nn.Parameter],
    inputs: Sequence[torch.Tensor],
    *,
    train: bool,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    autocast: contextlib.AbstractContextManager | None = None,
) -> list[torch.Tensor]:
    """[output] for a forward step; [output, grads of float inputs, grads of params] for a train step.

    Gradients are computed with `torch.autograd.grad`, so `.grad` fields are left untouched
    and no optimizer state changes.
    """
    if not train:
        with torch.no_grad(), autocast or contextlib.nullcontext():
            return [module(*inputs)]
    leaves = [x.detach().requires_grad_(True) if x.is_floating_point() else x for x in inputs]
    with autocast or contextlib.nullcontext():
        out = module(*leaves)
        loss = loss_fn(out)
    wrt = [x for x in leaves if x.requires_grad] + [p for p in params if p.requires_grad]
    grads = torch.autograd.grad(loss, wrt, allow_unused=True)
    return [out.detach()] + [g for g in grads if g is not None]


def check_parity(
    eager: nn.Module,
    compiled: Callable[..., torch.Tensor],
    inputs: Sequence[torch.Tensor],
    *,
    dtype: str,
    train: bool,
    loss_fn: Callable[[torch.Tensor], torch.Tensor] = lambda out: out.float().mean(),
    autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
    seed: int = 0,
) -> Parity:
    """Compare `compiled` with `eager` (same weights: a compiled module wraps the eager one) on `inputs`.

    train: also compare the gradients of the loss w.r.t. the float inputs and every parameter.
    autocast: a factory of the step's autocast context (called once per run).
    """
    tol = PARITY_TOL[dtype]
    if train and active_dropout(eager):
        return Parity(None, tol, None, "not comparable: dropout > 0 in train mode makes outputs random")
    params = list(eager.parameters())
    runs = []
    for fn in (eager, compiled):
        torch.manual_seed(seed)
        ctx = autocast() if autocast is not None else None
        runs.append(step_outputs(fn, params, inputs, train=train, loss_fn=loss_fn, autocast=ctx))
    expected, actual = runs
    return compare_outputs(actual, expected, dtype)


def compare_outputs(actual: Sequence[torch.Tensor], expected: Sequence[torch.Tensor], dtype: str) -> Parity:
    """Parity of paired tensors: the worst rel_err against PARITY_TOL[dtype] (NaN and a count mismatch fail)."""
    tol = PARITY_TOL[dtype]
    if len(expected) != len(actual):
        return Parity(None, tol, False, f"compiled step gave {len(actual)} tensors, eager {len(expected)}")
    err = max(rel_err(a, e) for a, e in zip(actual, expected))
    if err != err:  # NaN
        return Parity(err, tol, False, "NaN in the comparison")
    return Parity(err, tol, err <= tol, "" if err <= tol else f"max_rel_err {err:.3g} > tol {tol:g} ({dtype})")
