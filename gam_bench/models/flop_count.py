"""FLOPs that torch's FlopCounterMode cannot see, added to its count by formula.

The counter sees matmul-like aten ops only. Elementwise work that is a real share of an op
(the pairwise decay weights of chunked linear attention) and ops outside its table (the FFTs
of a long convolution) would go uncounted. `counted(x, forward, backward)` returns x (a view)
and tells the counter `forward` FLOPs now and `backward` FLOPs when the gradient passes
back through it, by calling the no-op `gam_bench::flops(int)`, whose registered flop
formula is its argument. Outside a FlopCounterMode the call does nothing; under
torch.compile it is skipped (nothing counts FLOPs in a compiled step).
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import register_flop_formula

_LIB = torch.library.Library("gam_bench", "FRAGMENT")
_LIB.define("flops(int n) -> ()")
_LIB.impl("flops", lambda n: None, "CompositeExplicitAutograd")


@register_flop_formula(torch.ops.gam_bench.flops)
def _formula(n: int, *args, out_shape=None, **kwargs) -> int:
    return n


class _Counted(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, forward: int, backward: int) -> torch.Tensor:
        torch.ops.gam_bench.flops(forward)
        ctx.backward_flops = backward
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        torch.ops.gam_bench.flops(ctx.backward_flops)
        return grad, None, None


def counted(x: torch.Tensor, forward: int, backward: int) -> torch.Tensor:
    """x, with `forward` FLOPs counted now and `backward` FLOPs when its gradient is computed."""
    if torch.compiler.is_compiling():
        return x
    if x.requires_grad:
        return _Counted.apply(x, int(forward), int(backward))
    torch.ops.gam_bench.flops(int(forward))
    return x
