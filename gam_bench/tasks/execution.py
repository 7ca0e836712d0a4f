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
honours `compile` / `cuda_graph` only if it is listed in `EXECUTION_TASKS` (pre-flight
refuses them for any other task). The decode task compiles its prefill and decode functions
rather than a module, with the same pieces (tasks/decode_execution.py).
"""

from __future__ import annotations

import contextlib
import difflib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_args

import torch
from torch import nn

from gam_bench.errors import UserError
from gam_bench.suite import Compile
from gam_bench.tasks.precision import autocast_for

if TYPE_CHECKING:
    from gam_bench.cell import Cell

COMPILE_MODES: tuple[str, ...] = get_args(Compile)  # eager, default, reduce-overhead, max-autotune
EXECUTION_TASKS = ("throughput", "decode")  # throughput: `prepare`; decode: tasks/decode_execution
# torch.compile modes that already use CUDA graphs (cudagraph trees) on CUDA.
CUDA_GRAPH_COMPILE_MODES = ("reduce-overhead", "max-autotune")
# Steps a CUDA graph can hold: a throughput forward, and the decode task's decode steps
# (modes decode and both; a prefill stays outside the graph).
CUDA_GRAPH_STEP_MODES = ("forward", "decode", "both")
# max_rel_err = max |compiled - eager| / max |eager| per tensor, the worst over all tensors compared.
# fp32: inductor reorders reductions and fuses ops, ~1e-6 at small shapes, ~1e-5 over long sums;
# bf16/fp16 (autocast): one rounding of the mantissa (8 / 11 bits) at every fused boundary.
PARITY_TOL = {"float32": 1e-4, "bfloat16": 5e-2, "float16": 1e-2}


class CompileError(RuntimeError):
    """torch.compile failed (dynamo tracing, AOTAutograd or the inductor backend).

    `mode` is the compile mode, `reason` one line naming the original exception type; the
    worker turns it into an `error` row and the sweep goes on.
    """

    def __init__(self, mode: str, reason: str):
        super().__init__(f"torch.compile(mode={mode!r}) failed: {reason}")
        self.mode = mode
        self.reason = reason


def validate_execution(compile: str, cuda_graph: bool, device: str, mode: str, where: str) -> None:
    """Load-time check of a cell's execution fields; raises a one-line UserError.

    where: "<file>: <entry>" for the message. mode: the cell's step mode (forward, decode, ...).
    """
    if compile not in COMPILE_MODES:
        close = difflib.get_close_matches(str(compile), COMPILE_MODES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UserError(f"{where}: compile: {compile!r} is not a compile mode.{hint} Valid: {', '.join(COMPILE_MODES)}")
    device_type = device.split(":")[0]
    if compile == "reduce-overhead" and device_type != "cuda":
        raise UserError(
            f"{where}: compile: 'reduce-overhead' is inductor with CUDA graphs and needs a CUDA device "
            f"(device: {device!r}); on {device_type} it would run as 'default'"
        )
    if not cuda_graph:
        return
    if device_type != "cuda":
        raise UserError(f"{where}: cuda_graph: true needs a CUDA device (device: {device!r})")
    if mode not in CUDA_GRAPH_STEP_MODES:
        raise UserError(
            f"{where}: cuda_graph: true captures forward steps (throughput) and decode steps (decode modes "
            f"decode and both), not mode {mode!r}"
        )
    if compile in CUDA_GRAPH_COMPILE_MODES:
        raise UserError(
            f"{where}: cuda_graph: true with compile: {compile!r}: that mode captures CUDA graphs itself; "
            "use compile: eager or default with cuda_graph"
        )


def compile_module(module: nn.Module, compile: str) -> nn.Module:
    """`torch.compile(module, mode=compile, dynamic=False)` with the inductor backend; `eager` returns `module`.

    Compilation is lazy: it happens on the first call (see `compile_step`). `dynamic=False`:
    a cell has one shape, so it gets static-shape kernels even when an earlier cell in the
    same worker compiled the same code at another length (dynamo would otherwise switch to
    dynamic shapes on the second shape it sees).
    """
    if compile == "eager":
        return module
    if compile not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {compile!r}; valid: {COMPILE_MODES}")
    return torch.compile(module, mode=compile, backend="inductor", dynamic=False)


def _compile_failures() -> tuple[type[BaseException], ...]:
    """Exception types that mean "compilation failed" (not a failure of the step itself, e.g. OOM)."""
    from torch._dynamo.exc import TorchDynamoException
    from torch._inductor.exc import CppCompileError, InvalidCxxCompiler, OperatorIssue

    return (TorchDynamoException, OperatorIssue, CppCompileError, InvalidCxxCompiler)


def compile_step(step: Callable[[], Any], compile: str) -> float:
    """Run `step` once, which compiles it when `compile` is not eager; returns that call's wall seconds.

    For `eager` nothing is run and 0.0 is returned. Raises CompileError when dynamo or
    inductor fail; other exceptions (e.g. out of memory) propagate unchanged.
    """
    if compile == "eager":
        return 0.0
    start = time.perf_counter()
    try:
        step()
        _synchronize()
    except _compile_failures() as exc:
        raise CompileError(compile, _one_line(exc)) from exc
    return time.perf_counter() - start


def _one_line(exc: BaseException) -> str:
    """`Type: first line`, plus the wrapped exception's (inductor wraps its errors in BackendCompilerFailed)."""
    text = f"{type(exc).__name__}: {_first_line(exc)}".rstrip(": ")
    inner = getattr(exc, "inner_exception", None)
    return f"{text} {type(inner).__name__}: {_first_line(inner)}" if inner is not None else text


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:300] if lines else ""


def _synchronize() -> None:
    if torch.accelerator.is_available():
        torch.accelerator.synchronize()


class RecompileCounter:
    """Counts dynamo (re)compilations inside a `with` block.

    dynamo bumps `counters["frames"]["total"]` each time its frame callback runs, i.e. on
    every cache miss of a compiled frame (convert_frame.ConvertFrame.__call__); a warm frame
    whose guards pass never reaches it. So after the compiling first call, any increase is a
    recompilation (a guard failed, e.g. a new shape or a changed module attribute).
    `counters["stats"]["unique_graphs"]` (graphs handed to the backend) is kept as `graphs`.
    """

    def __enter__(self) -> RecompileCounter:
        from torch._dynamo.utils import counters

        self._counters = counters
        self._frames0 = counters["frames"]["total"]
        self._graphs0 = counters["stats"]["unique_graphs"]
        self.recompiles = 0
        self.graphs = 0
        return self

    def __exit__(self, *exc: object) -> None:
        self.recompiles = self._counters["frames"]["total"] - self._frames0
        self.graphs = self._counters["stats"]["unique_graphs"] - self._graphs0


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


def check_task(task: str, compile: str, cuda_graph: bool, where: str) -> None:
    """Load-time: compile / cuda_graph are refused for a task that does not honour them (never ignored)."""
    if task in EXECUTION_TASKS or (compile == "eager" and not cuda_graph):
        return
    field = "compile" if compile != "eager" else "cuda_graph"
    value = compile if compile != "eager" else "true"
    raise UserError(
        f"{where}: {field}: {value} is for {' and '.join(EXECUTION_TASKS)} cells; task {task!r} runs eager only"
    )


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


@contextlib.contextmanager
def count_recompiles(columns: dict[str, Any]):
    """Sets columns["recompiles"] to the dynamo recompilations inside the block (not for eager)."""
    if columns["compile"] == "eager":
        yield
        return
    with RecompileCounter() as counter:
        yield
    columns["recompiles"] = counter.recompiles


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
