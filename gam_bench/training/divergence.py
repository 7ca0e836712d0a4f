"""Divergence is data: a training run that meets a non-finite loss or gradient stops at once.

`check_step` is called once per optimiser step by the shared training step (and any task's
own loop): it raises `Diverged` when the loss, or the gradient norm of a step that no
float16 GradScaler guards, is NaN or inf. A GradScaler's skipped step (inf/NaN gradients
while the scale is being found) is not divergence: the scaler skips it and lowers its scale.

The training loop that catches it adds where it happened (`Diverged.at`): the 1-based step,
the tokens trained on before that step, the last finite training loss, and the rows it had
already produced. The worker stores such a cell with status `diverged`, the reason in
`error`, and `diverged_step`, `diverged_tokens` and `last_finite_loss` on every row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

STATUS = "diverged"


class Diverged(ArithmeticError):
    """A training run met a non-finite value; carries what, where, and the rows so far."""

    def __init__(
        self,
        what: str,
        value: float,
        *,
        step: int | None = None,
        tokens: int | None = None,
        last_finite_loss: float | None = None,
        rows: Iterable[dict[str, Any]] = (),
        where: str | None = None,
    ) -> None:
        self.what, self.value, self.where = what, value, where
        self.step, self.tokens, self.last_finite_loss = step, tokens, last_finite_loss
        self.rows = [dict(r) for r in rows]
        super().__init__(self.reason)

    @property
    def reason(self) -> str:
        where = "" if self.step is None else f" at step {self.step}"
        if self.tokens is not None:
            where += f" after {self.tokens:,} tokens"
        last = "none" if self.last_finite_loss is None else f"{self.last_finite_loss:.4g}"
        text = f"training diverged: non-finite {self.what} ({self.value}){where}; last finite loss {last}"
        return text + (f"; first non-finite value: {self.where}" if self.where else "")

    def at(
        self,
        *,
        step: int,
        tokens: int | None,
        last_finite_loss: float | None,
        rows: Iterable[dict[str, Any]] = (),
        where: str | None = None,
    ) -> Diverged:
        """The same divergence, placed in its run (and, with `where`, in the model)."""
        place = {"step": step, "tokens": tokens, "last_finite_loss": last_finite_loss}
        return Diverged(self.what, self.value, **place, rows=rows, where=where or self.where)

    def columns(self) -> dict[str, Any]:
        """The store columns every row of the diverged cell carries."""
        return {
            "diverged_step": self.step,
            "diverged_tokens": self.tokens,
            "last_finite_loss": self.last_finite_loss,
            "diverged_where": self.where,
        }

    def stored_rows(self) -> list[dict[str, Any]]:
        """The rows produced before the divergence, then one row for the divergence itself
        (its `step` is the diverged step, so it is the cell's last)."""
        marker = {"step": self.step, "tokens_seen": self.tokens, **self.columns()}
        return [{**row, **self.columns()} for row in self.rows] + [marker]


def check_step(loss: float, grad_norm: float | None, *, scaled: bool = False) -> None:
    """Raise `Diverged` for a non-finite loss, or a non-finite gradient norm when no GradScaler
    (`scaled`) is there to skip the step."""
    if not math.isfinite(loss):
        raise Diverged("loss", loss)
    if grad_norm is not None and not scaled and not math.isfinite(grad_norm):
        raise Diverged("gradient norm", grad_norm)


def check_metric(name: str, value: float) -> None:
    """Raise `Diverged` for a non-finite evaluation metric (e.g. the validation loss)."""
    if not math.isfinite(value):
        raise Diverged(name, value)


def locate(model: nn.Module, loss_fn: Callable[[], torch.Tensor]) -> str:
    """Where the first non-finite value appears when `loss_fn()` (a forward to a scalar loss) is
    run once more and back-propagated, with hooks on every module of `model`: the module, forward
    or backward, the largest |value| it received, and the largest finite |value| any module
    produced before it. Gradients are left at None. Call it with the weights of the failing step.
    """
    names = {module: name or "<model>" for name, module in model.named_modules()}
    trace = _Trace()

    def on_forward(module: nn.Module, args: tuple, output: Any) -> None:
        name = names[module]
        trace.see("forward", name, _peak(args), _peak(output))
        for t in _tensors(output):
            if t.requires_grad:
                t.register_hook(lambda g, name=name: trace.see("backward", name, _peak(g), _peak(g)))

    handles = [m.register_forward_hook(on_forward) for m in names]
    try:
        loss = loss_fn()
        if loss.requires_grad:
            loss.backward()
    finally:
        for handle in handles:
            handle.remove()
        model.zero_grad(set_to_none=True)
    return trace.describe()


class _Trace:
    """The first non-finite output seen, in execution order, and the largest finite one before it."""

    def __init__(self) -> None:
        self.first: str | None = None
        self.largest: tuple[float, str] = (0.0, "")

    def see(self, phase: str, name: str, received: float, produced: float) -> None:
        if self.first is not None:
            return
        if not math.isfinite(produced):
            self.first = f"{phase} of {name!r} (largest |input| {received:.3g})"
        elif produced >= self.largest[0]:
            self.largest = (produced, f"{phase} of {name!r}")

    def describe(self) -> str:
        if self.first is None:
            return "none on a re-run of the same batch (not reproduced)"
        peak, where = self.largest
        return self.first + (f"; largest finite |value| before it {peak:.3g}, {where}" if where else "")


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value] if value.is_floating_point() else []
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


def _peak(value: Any) -> float:
    """The largest |x| over the floating tensors in `value` (nan if any is NaN), 0 if none."""
    peaks = [t.detach().abs().max().item() for t in _tensors(value) if t.numel()]
    if any(math.isnan(p) for p in peaks):
        return math.nan
    return max(peaks, default=0.0)
