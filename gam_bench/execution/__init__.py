"""Execution modes of a step: eager, torch.compile (inductor) and CUDA graphs.

The throughput and decode tasks use these pieces in this order:

1. `validate_execution(compile, cuda_graph, device, mode, where)` at load time: a bad
   combination is a one-line UserError (CUDA graphs need CUDA; `reduce-overhead` is CUDA
   graphs inside inductor, so it is refused on other devices instead of silently running as
   `default`).
2. `compile_module(module, compile)`: `torch.compile(module, mode=...)` (lazy), or the module
   itself for `eager`. The compiled module shares the eager module's parameters.
3. `check_parity(eager, compiled, inputs, ...)`: one eager and one compiled step on the same
   inputs (same seed, same weights); forward outputs and, in train modes, the gradients of the
   inputs and of every parameter. No optimizer step is taken. Stores `max_rel_err` and
   `parity_ok` (against `PARITY_TOL[dtype]`).
4. `compile_step(step, compile)`: runs the step once, which is when torch.compile compiles
   (forward and, for a backward step, the AOTAutograd backward); its wall time is
   `compile_s`, never part of the timed steps. A failure raises `CompileError`.
5. `RecompileCounter` around warmup + timed steps: how many times dynamo compiled again.
6. `capture_cuda_graph(step)` for `cuda_graph: true`: warm up on a side stream, capture one
   step into a `torch.cuda.CUDAGraph`, and return the replay.

Parity runs after `compile_step`, so the compile is not counted twice; with active dropout
(train mode, p > 0) outputs are random and parity is reported as not comparable (None) with
the reason, never as a pass.

`prepare(cell, module, build_step, inputs)` runs steps 2-4 and 6 for a cell and returns an
`Execution`: the step to warm up and time, the eager step to count FLOPs (and tensor
memory) on, and the row's execution columns; `Execution.counting()` is step 5. A task
honours `compile` / `cuda_graph` only if its capabilities say so (`Task.capabilities.compile`;
pre-flight refuses them for any other task). The decode task compiles its prefill and
decode functions rather than a module, with the same pieces (`decode`).

Modules: `rules` (load-time checks, no torch), `compile`, `parity`, `graphs`, `step`
(`prepare`, for a step of a module) and `decode` (`prepare_decode`). The names below are
re-exported here, so `execution.prepare` and the rest read as before.
"""

from gam_bench.execution.compile import (
    CompileError,
    RecompileCounter,
    compile_module,
    compile_step,
    count_recompiles,
)
from gam_bench.execution.graphs import capture_cuda_graph, graph_parity
from gam_bench.execution.parity import (
    PARITY_TOL,
    Parity,
    active_dropout,
    check_parity,
    compare_outputs,
    rel_err,
    step_outputs,
)
from gam_bench.execution.rules import (
    COMPILE_MODES,
    CUDA_GRAPH_COMPILE_MODES,
    CUDA_GRAPH_STEP_MODES,
    validate_execution,
)
from gam_bench.execution.step import Execution, execution_columns, prepare

__all__ = [
    "COMPILE_MODES",
    "CUDA_GRAPH_COMPILE_MODES",
    "CUDA_GRAPH_STEP_MODES",
    "PARITY_TOL",
    "CompileError",
    "Execution",
    "Parity",
    "RecompileCounter",
    "active_dropout",
    "capture_cuda_graph",
    "check_parity",
    "compare_outputs",
    "compile_module",
    "compile_step",
    "count_recompiles",
    "execution_columns",
    "graph_parity",
    "prepare",
    "rel_err",
    "step_outputs",
    "validate_execution",
]
