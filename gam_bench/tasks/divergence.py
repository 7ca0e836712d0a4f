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
from collections.abc import Iterable
from typing import Any

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
    ) -> None:
        self.what, self.value = what, value
        self.step, self.tokens, self.last_finite_loss = step, tokens, last_finite_loss
        self.rows = [dict(r) for r in rows]
        super().__init__(self.reason)

    @property
    def reason(self) -> str:
        where = "" if self.step is None else f" at step {self.step}"
        if self.tokens is not None:
            where += f" after {self.tokens:,} tokens"
        last = "none" if self.last_finite_loss is None else f"{self.last_finite_loss:.4g}"
        return f"training diverged: non-finite {self.what} ({self.value}){where}; last finite loss {last}"

    def at(
        self, *, step: int, tokens: int | None, last_finite_loss: float | None, rows: Iterable[dict[str, Any]] = ()
    ) -> Diverged:
        """The same divergence, placed in its run."""
        return Diverged(self.what, self.value, step=step, tokens=tokens, last_finite_loss=last_finite_loss, rows=rows)

    def columns(self) -> dict[str, Any]:
        """The store columns every row of the diverged cell carries."""
        return {
            "diverged_step": self.step,
            "diverged_tokens": self.tokens,
            "last_finite_loss": self.last_finite_loss,
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
