"""A cell's step in its execution mode: `prepare(cell, module, build_step, inputs)`.

Runs the pieces in order (execution/__init__): compile (`compile.compile_module`), one
untimed compiling step (`compile.compile_step` -> compile_s), parity against eager
(`parity.check_parity` -> max_rel_err / parity_ok) and, for `cuda_graph`, the capture
(`graphs.capture_cuda_graph`); returns an `Execution`: the step to warm up and time, the
eager step to count FLOPs (and tensor memory) on, and the row's execution columns;
`Execution.counting()` counts recompiles around warmup and timing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from gam_bench.execution.compile import compile_module, compile_step, count_recompiles
from gam_bench.execution.graphs import capture_cuda_graph, graph_parity
from gam_bench.execution.parity import check_parity
from gam_bench.precision import autocast_for

if TYPE_CHECKING:
    from gam_bench.cell import Cell


@dataclass
class Execution:
    """What a task times (`step`), what it counts FLOPs on (`counted`: the eager step), and the row's columns.

    columns: compile, cuda_graph, compile_s (None for eager), recompiles (set by `counting`;
    None for eager), max_rel_err, parity_ok (None for eager or when not comparable) and
    parity_note (why parity failed or could not be judged; None when it passed).
    """

    step: Callable[[], Any]
    counted: Callable[[], Any]
    columns: dict[str, Any]

    def counting(self) -> contextlib.AbstractContextManager:
        """Around warmup and the timed steps: stores how often dynamo compiled again in `recompiles`."""
        return count_recompiles(self.columns)


def execution_columns(cell: Cell) -> dict[str, Any]:
    """A row's execution columns before anything is compiled (see `Execution`)."""
    columns: dict[str, Any] = {"compile": cell.compile, "cuda_graph": cell.cuda_graph}
    columns.update(compile_s=None, recompiles=None, max_rel_err=None, parity_ok=None, parity_note=None)
    return columns


def prepare(
    cell: Cell,
    module: nn.Module,
    build_step: Callable[[nn.Module], Callable[[], Any]],
    inputs: Callable[[], Sequence[torch.Tensor]],
    *,
    cuda: Any = None,
) -> Execution:
    """Compile, time the compile, check parity and (cuda_graph) capture; see the module docstring.

    build_step(m): the cell's step running `m` on fixed inputs. inputs(): fresh inputs of one
    forward call for the parity check. cuda: the `torch.cuda` namespace (a fake in CPU tests).
    Raises CompileError when torch.compile fails.
    """
    columns = execution_columns(cell)
    eager_step = build_step(module)
    if cell.compile == "eager" and not cell.cuda_graph:
        return Execution(eager_step, eager_step, columns)
    if cell.compile != "eager":
        torch._dynamo.reset()  # this cell's compile is its own: no cache entries from earlier cells
    compiled = compile_module(module, cell.compile)
    step = build_step(compiled)
    if cell.compile != "eager":
        columns["compile_s"] = compile_step(step, cell.compile)
    autocast = lambda: autocast_for(cell)  # noqa: E731 - a fresh context per run
    if cell.cuda_graph:
        step = capture_cuda_graph(step, cuda=cuda)
        parity = graph_parity(module, compiled, inputs(), dtype=cell.dtype, autocast=autocast, cuda=cuda)
    else:
        train = cell.mode != "forward"
        parity = check_parity(module, compiled, inputs(), dtype=cell.dtype, train=train, autocast=autocast)
    columns.update(max_rel_err=parity.max_rel_err, parity_ok=parity.ok, parity_note=parity.note or None)
    return Execution(step, eager_step, columns)
