"""Execution modes of a decode cell: its prefill and decode functions eager, compiled, or
its decode step captured into a CUDA graph.

The decode task times `module.prefill` (mode prefill, both) and `module.decode` (decode,
both). `prepare_decode(cell, module, x, N)` returns a `DecodeExecution` whose `prefill` and
`decode` the task calls in their place, with the same contracts, and the row's execution
columns (execution.step's: compile, cuda_graph, compile_s, recompiles, max_rel_err,
parity_ok, parity_note).

- compile: only what the cell times is compiled: prefill with static shapes
  (`dynamic=False`: one length per cell), decode with dynamo's automatic dynamic shapes
  (`dynamic=None`): a KV cache is one position longer at every step, and with static shapes
  each step would compile again until dynamo's recompile limit sent it back to eager.
  The compiling calls, timed together as `compile_s`, are one prefill and two decode steps
  (the first from a prefill's state, the second from a decode step's: their layouts differ,
  and the second length makes a growing cache's length dynamic), so warmup and timing find
  every graph compiled; `recompiles` counts any compile after them.
- parity: the eager and the compiled functions run the same prefill (and two decode steps,
  each on its own copy of the state) on the same inputs; `max_rel_err` is the worst over
  outputs and state tensors.
- cuda_graph: the decode step (`decode` on static token and state buffers, then the new
  state written into those buffers) is captured once, on CUDA, from a prefill's state; the
  timed decode steps are replays. `adopt(state)` copies a prefill's state into the buffers
  (untimed: the task calls it before warming up or timing decode). A state that changes
  size (a KV cache) or a host value (an LM's position) cannot live in fixed buffers: that
  is a load-time refusal for known models (`models.decode.state_grows`, level lm) and a
  `GraphCaptureError` row for a plugin that does not say. The prefill runs outside the graph.
The graph's static buffers are a second copy of the state, live for the whole cell (so a
graphed cell's peak memory holds the state twice).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from gam_bench import execution
from gam_bench.models.decode import DecodeState, copy_state_
from gam_bench.precision import autocast_for

if TYPE_CHECKING:
    from gam_bench.cell import Cell

Prefill = Callable[..., tuple[torch.Tensor, DecodeState]]
Decode = Callable[[torch.Tensor, DecodeState], tuple[torch.Tensor, DecodeState]]


class GraphCaptureError(RuntimeError):
    """The decode step could not be captured into a CUDA graph (its state does not keep its size)."""


@dataclass
class DecodeExecution:
    """What the decode task calls in place of module.prefill / module.decode, and the row's columns.

    adopt(state): the state decoding continues from, as the decode function needs it (the
    graph's static buffers for cuda_graph; the state itself otherwise).
    """

    prefill: Prefill
    decode: Decode
    columns: dict[str, Any]
    adopt: Callable[[DecodeState], DecodeState] = field(default=lambda state: state)

    def counting(self) -> contextlib.AbstractContextManager:
        """Around warmup and the timed calls: stores dynamo's recompilations in `recompiles`."""
        return execution.count_recompiles(self.columns)


def prepare_decode(
    cell: Cell, module: nn.Module, x: torch.Tensor, context_len: int, *, cuda: Any = None
) -> DecodeExecution:
    """Compile, time the compile, check parity and (cuda_graph) capture; see the module docstring.

    x: the cell's inputs (B, N+G) token ids or (B, N+G, D) activations; context_len: N.
    cuda: the `torch.cuda` namespace (a fake in CPU tests). Raises execution.CompileError
    when torch.compile fails and GraphCaptureError when the step cannot be captured.
    """
    columns = execution.execution_columns(cell)
    kwargs = {"last_only": True} if cell.level == "lm" else {}
    eager_prefill = lambda inputs: module.prefill(inputs, **kwargs)  # noqa: E731
    prefill, decode = eager_prefill, module.decode
    if cell.compile == "eager" and not cell.cuda_graph:
        return DecodeExecution(prefill, decode, columns)
    autocast = lambda: autocast_for(cell)  # noqa: E731 - a fresh context per call
    calls = _Calls(x, context_len, autocast)
    if cell.compile != "eager":
        torch._dynamo.reset()  # this cell's compile is its own
        prefill, decode = _compiled(cell, eager_prefill, module.decode)
        state = calls.prefill_state(eager_prefill) if cell.mode == "decode" else None  # not part of compile_s
        columns["compile_s"] = execution.compile_step(
            lambda: calls.run(prefill, decode, cell.mode, state), cell.compile
        )
    if cell.cuda_graph:
        token = x[:, context_len : context_len + 1]  # (B, 1) or (B, 1, D)
        state = calls.prefill_state(eager_prefill)
        graph = GraphDecode(decode, state, token, autocast=autocast, dtype=cell.dtype, cuda=cuda)
        parity = calls.graph_parity(eager_prefill, module.decode, graph)
        columns.update(_parity_columns(parity))
        return DecodeExecution(prefill, graph, columns, graph.adopt)
    parity = calls.parity(eager_prefill, module.decode, prefill, decode, cell.mode, cell.dtype)
    columns.update(_parity_columns(parity))
    return DecodeExecution(prefill, decode, columns)


def _compiled(cell: Cell, prefill: Prefill, decode: Decode) -> tuple[Prefill, Decode]:
    """torch.compile of the functions the cell times (mode prefill: prefill only; decode: decode only)."""
    if cell.mode != "decode":
        prefill = torch.compile(prefill, mode=cell.compile, backend="inductor", dynamic=False)
    if cell.mode != "prefill":
        decode = torch.compile(decode, mode=cell.compile, backend="inductor", dynamic=None)
    return prefill, decode


def _parity_columns(parity: execution.Parity) -> dict[str, Any]:
    return {"max_rel_err": parity.max_rel_err, "parity_ok": parity.ok, "parity_note": parity.note or None}


class _Calls:
    """The prefill and decode calls the compile, the parity check and the capture make, as the task makes them
    (eval mode, inference_mode, the cell's autocast) on the cell's inputs."""

    STEPS = 2  # decode steps per run: from a prefill's state, then from a decode step's

    def __init__(self, x: torch.Tensor, context_len: int, autocast: Callable[[], contextlib.AbstractContextManager]):
        self.x, self.N, self.autocast = x, context_len, autocast

    def run(self, prefill: Prefill, decode: Decode, mode: str, state: DecodeState | None = None) -> list[torch.Tensor]:
        """Prefill (unless `state` is given), then STEPS decode steps unless mode is prefill; the
        outputs and the final state's tensors."""
        with torch.inference_mode(), self.autocast():
            outs = []
            if state is None:
                out, state = prefill(self.x[:, : self.N])
                outs.append(out)
            if mode != "prefill":
                for t in range(self.N, self.N + self.STEPS):
                    out, state = decode(self.x[:, t : t + 1], state)
                    outs.append(out.clone())  # a graph's output buffer is rewritten by the next replay
            return outs + list(state.tensors())

    def prefill_state(self, prefill: Prefill) -> DecodeState:
        with torch.inference_mode(), self.autocast():
            return prefill(self.x[:, : self.N])[1]

    def parity(self, eager_prefill, eager_decode, prefill, decode, mode: str, dtype: str) -> execution.Parity:
        """The compiled functions against eager. Mode decode: both decode from one eager prefill's state
        (each from its own copy), as the cell does."""
        if mode == "decode":
            state = self.prefill_state(eager_prefill)
            expected = self.run(eager_prefill, eager_decode, mode, copy.deepcopy(state))
            actual = self.run(prefill, decode, mode, copy.deepcopy(state))
        else:
            expected = self.run(eager_prefill, eager_decode, mode)
            actual = self.run(prefill, decode, mode)
        return execution.compare_outputs(actual, expected, dtype)

    def graph_parity(self, eager_prefill, eager_decode, graph: GraphDecode) -> execution.Parity:
        """Replays from an eager prefill's state against eager decode steps from a copy of it."""
        state = self.prefill_state(eager_prefill)
        expected = self.run(eager_prefill, eager_decode, "decode", copy.deepcopy(state))
        actual = self.run(eager_prefill, graph, "decode", graph.adopt(state))
        graph.synchronize()
        return execution.compare_outputs(actual, expected, graph.dtype)


class GraphDecode:
    """A decode step captured into a CUDA graph: call it as `decode(token, state)`.

    Capture: static token (B, 1[, D]) and state buffers (copies of `state`); the captured
    step runs `decode` on them and writes the new state back into the same buffers, so every
    replay advances the state by one token. A call copies `token` into the static token,
    adopts `state` if it is not the buffers already, replays, and returns (the static output,
    the buffers).
    """

    def __init__(
        self,
        decode: Decode,
        state: DecodeState,
        token: torch.Tensor,
        *,
        autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
        dtype: str = "float32",
        cuda: Any = None,
    ):
        self.cuda = cuda if cuda is not None else torch.cuda
        self._decode, self._autocast, self.dtype = decode, autocast, dtype
        self.state = copy.deepcopy(state)  # the static buffers
        self.token = token.clone()  # (B, 1) or (B, 1, D), static
        self.out: torch.Tensor | None = None
        self.replay = execution.capture_cuda_graph(self._step, cuda=self.cuda)

    def _step(self) -> None:
        """The captured step: autocast is recorded with it (a replay runs no Python)."""
        with torch.inference_mode(), self._autocast():
            out, new = self._decode(self.token, self.state)
            try:
                copy_state_(self.state, new)
            except ValueError as exc:
                raise GraphCaptureError(f"cuda_graph: the decode step cannot be captured: {exc}") from exc
            self.out = out

    def adopt(self, state: DecodeState) -> DecodeState:
        """Copy `state` into the static buffers; returns them (decoding continues from there)."""
        if state is not self.state:
            with torch.inference_mode():
                copy_state_(self.state, state)
        return self.state

    def __call__(self, token: torch.Tensor, state: DecodeState) -> tuple[torch.Tensor, DecodeState]:
        self.adopt(state)
        self.token.copy_(token)
        self.replay()
        return self.out, self.state

    def synchronize(self) -> None:
        self.cuda.synchronize()
