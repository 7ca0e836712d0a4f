"""How many aten ops one step dispatches: a deterministic cost read in the counted step.

The counted step's dispatch mode (measure/tensor_memory.TensorMemory) sees every op below
autograd, the backward's included, and calls an `observe(func)` hook for each; `OpCount`
is such a hook, chained with any other watcher (provenance.SDPAKernels):

    ops = OpCount(then=kernels.observe)
    count_step(step, flops=False, observe=ops.observe)
    ops.count   # the row's `dispatched_ops`

For a given model, shape and torch version the count is fixed: an extra op in a step (a
code regression the gate should catch) moves it by one or more, whatever the machine's
speed. It does not see work inside an op (a slower kernel), which `instructions` does.
No torch here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class OpCount:
    """Counts the ops it observes, then passes each on to `then` (if given)."""

    def __init__(self, then: Callable[[Any], object] | None = None) -> None:
        self.count = 0
        self._then = then

    def observe(self, func: Any) -> None:
        self.count += 1
        if self._then is not None:
            self._then(func)
