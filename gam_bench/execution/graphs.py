"""CUDA graphs: capture one step and replay it (`cuda_graph: true`), and its parity against eager.

As torch's CUDA graphs docs say: warm up on a side stream, capture with `torch.cuda.graph`,
replay. A captured step reads and writes only static tensors. `cuda`: the `torch.cuda`
namespace (a fake in CPU tests).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from gam_bench.execution.parity import Parity, compare_outputs


def capture_cuda_graph(step: Callable[[], Any], *, warmup: int = 3, cuda: Any = None) -> Callable[[], None]:
    """Capture one call of `step` into a CUDA graph; returns the replay (a zero-argument callable).

    As torch's CUDA graphs docs say: `warmup` calls on a side stream first (lazy init,
    cuBLAS workspaces, autotuning), then capture with `torch.cuda.graph`. `step` must read
    and write only static tensors (its inputs are fixed buffers; refresh them with `copy_`).
    cuda: the `torch.cuda` namespace (a fake in CPU tests).
    """
    cuda = cuda if cuda is not None else torch.cuda
    side = cuda.Stream()
    side.wait_stream(cuda.current_stream())
    with cuda.stream(side):
        for _ in range(warmup):
            step()
    cuda.current_stream().wait_stream(side)
    graph = cuda.CUDAGraph()
    with cuda.graph(graph):
        step()
    cuda.synchronize()
    return graph.replay


def graph_parity(
    eager: nn.Module,
    module: Callable[..., torch.Tensor],
    inputs: Sequence[torch.Tensor],
    *,
    dtype: str,
    autocast: Callable[[], contextlib.AbstractContextManager],
    cuda: Any = None,
) -> Parity:
    """A forward of `module` captured into a CUDA graph and replayed, against the eager forward on `inputs`."""
    out: list[torch.Tensor] = []

    def forward() -> None:
        with torch.no_grad(), autocast():
            out[:] = [module(*inputs)]

    capture_cuda_graph(forward, cuda=cuda)()
    (cuda if cuda is not None else torch.cuda).synchronize()
    with torch.no_grad(), autocast():
        expected = eager(*inputs)
    return compare_outputs(out[:1], [expected], dtype)
