"""FLOPs of one step, counted by torch.utils.flop_counter.FlopCounterMode.

The counter sees matmul-like ops (mm, bmm, addmm, convolution, SDPA, ...) in forward and
backward; elementwise ops (softmax, GELU, the optimizer update) are not counted. The
counted step runs for real, so it is done outside the timed steps.
"""

from __future__ import annotations

from collections.abc import Callable

from torch.utils.flop_counter import FlopCounterMode


def count_flops(step: Callable[[], object]) -> int:
    """Run `step` once under a FLOP counter; return its total FLOPs."""
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return int(counter.get_total_flops())
