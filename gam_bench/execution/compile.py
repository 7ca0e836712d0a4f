"""torch.compile of a cell's step: compile lazily, time the compiling first call, count recompiles.

`compile_module(module, compile)`: `torch.compile(module, mode=...)` (lazy), or the module
itself for `eager`; the compiled module shares the eager module's parameters.
`compile_step(step, compile)`: runs the step once, which is when torch.compile compiles
(forward and, for a backward step, the AOTAutograd backward); its wall time is `compile_s`,
never part of the timed steps; a failure raises `CompileError`. `RecompileCounter` /
`count_recompiles` around warmup and timed steps: how many times dynamo compiled again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from gam_bench.execution.rules import COMPILE_MODES


class CompileError(RuntimeError):
    """torch.compile failed (dynamo tracing, AOTAutograd or the inductor backend).

    `mode` is the compile mode, `reason` one line naming the original exception type; the
    worker turns it into an `error` row and the sweep goes on.
    """

    def __init__(self, mode: str, reason: str):
        super().__init__(f"torch.compile(mode={mode!r}) failed: {reason}")
        self.mode = mode
        self.reason = reason


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


@contextlib.contextmanager
def count_recompiles(columns: dict[str, Any]):
    """Sets columns["recompiles"] to the dynamo recompilations inside the block (not for eager)."""
    if columns["compile"] == "eager":
        yield
        return
    with RecompileCounter() as counter:
        yield
    columns["recompiles"] = counter.recompiles
