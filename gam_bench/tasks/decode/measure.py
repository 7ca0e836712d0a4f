"""The decode task's measurement: prefill time, per-token decode latency and state
bytes at one context length N.

Modes
- prefill: time `prefill` of N tokens (a fresh state every call; the LM computes the last
  position's logits only, as generation does).
- decode: one untimed prefill of N tokens, then G = `decode_tokens` decode steps, each timed
  on its own with the device synchronised around it. Step i appends token N+i, so the steps
  see contexts N, N+1, ..., N+G-1 and the state never holds more than N+G positions: the
  latency is that of context N (to within G/N). No step is re-timed on a grown state.
- both: prefill, then decode.

Warmup: `warmup` untimed prefills, and min(warmup, G) untimed decode steps on a prefilled
state that is then dropped, so warmup too stays within N+G positions (a positional LM needs
max_seq_len >= N+G: see `max_seq_len_needed`). Mode both warms decode up on the last warm-up
prefill's state and times decode from the state its last timed prefill left: warmup +
repeats prefills in all. Mode decode: a prefill, the warm-up steps, a fresh prefill (one
prefill without warmup). Everything runs in eval mode under torch.inference_mode, inside
`autocast()`. Peak memory is the worker's, around the whole cell.

Columns (None where the mode does not measure them): prefill_ms (median), prefill_ms_q25/_q75,
prefill_samples_ms, prefill_tokens_per_s (B * N / median), decode_ms_per_token (median over
the G steps), decode_ms_q25/_q75, decode_samples_ms (every step, in order),
decode_tokens_per_s (B / median: one token per sequence per step), state_bytes (at N, after
prefill), state_bytes_final (at N+G), backend, decode_backend, and the execution columns (compile,
cuda_graph, compile_s, recompiles, max_rel_err, parity_ok, parity_note: execution/decode.py).

The task: `run(cell, ctx)` builds the cell's model (LM or block; models/builder.py) with
max_seq_len = N+G (N for prefill cells) unless the suite sets it (`Decode.model_needs`),
measures one point with the cell's `measure` settings (warmup, repeats, min_run_time_s,
max_repeats: the prefill timing) and returns one row: the columns above plus decode_tokens,
params, d_model and n_layers. No FLOPs are counted (`measure.flops` is for throughput). The
cell's mode (prefill | decode | both) is the suite's `mode`; G is
`cell.settings.decode_tokens`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from gam_bench.cell import Cell
from gam_bench.execution.decode import DecodeExecution, prepare_decode
from gam_bench.measure.timing import Timing, time_steps, warm_up
from gam_bench.models.builder import build_for
from gam_bench.models.decode import DecodeState, decode_backend, state_bytes
from gam_bench.precision import autocast_for
from gam_bench.tasks.base import SILENT, RunContext
from gam_bench.tasks.decode.settings import DECODE_MODES as MODES

LEVELS = ("lm", "block")


def make_inputs(
    level: str, width: int, batch_size: int, length: int, device: torch.device, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random inputs: token ids (B, length) below `width` = vocab_size at the LM level,
    activations (B, length, width = d_model) at the block level."""
    if level == "lm":
        return torch.randint(0, width, (batch_size, length), device=device, generator=generator)  # (B, L)
    return torch.randn(batch_size, length, width, device=device, generator=generator)  # (B, L, D)


def measure_decode(
    module: nn.Module,
    *,
    level: str,
    width: int,
    batch_size: int,
    context_len: int,
    decode_tokens: int,
    device: torch.device | str,
    mode: str = "both",
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    warmup: int = 1,
    repeats: int = 5,
    min_run_time_s: float = 0.0,
    max_repeats: int = 50,
    execute: Callable[[torch.Tensor], DecodeExecution] | None = None,
) -> dict[str, Any]:
    """Measure one (module, B, N, G) point; returns the columns listed in the module docstring.

    module: a decoding LM or block (gam_bench.models.decode) on `device`. width: vocab_size
    (lm) or d_model (block). autocast: a factory of the context each call runs in (e.g.
    torch.autocast for float16). repeats / min_run_time_s / max_repeats: the prefill timing,
    as the throughput task's; decode is timed exactly G times. execute(x): the execution mode
    on the inputs x (execution/decode.prepare_decode; eager when None); its columns
    join the row.
    """
    _check_arguments(level, mode, context_len, decode_tokens)
    device = torch.device(device)
    N, G = context_len, decode_tokens
    x = make_inputs(level, width, batch_size, N + (G if mode != "prefill" else 0), device)
    module.eval()
    ex = execute(x) if execute is not None else None
    run = _Runner(module, level, x, N, autocast, ex)
    columns: dict[str, Any] = {"backend": str(getattr(module, "backend", "") or "")}
    columns["decode_backend"] = decode_backend(module) if mode != "prefill" else None
    with ex.counting() if ex is not None else contextlib.nullcontext():
        columns.update(
            _measure(
                run,
                mode,
                min(warmup, G) if mode != "prefill" else 0,
                warmup,
                device,
                batch_size,
                G,
                (repeats, min_run_time_s, max_repeats),
            )
        )
    columns.setdefault("state_bytes_final", None)
    return {**(ex.columns if ex is not None else {}), **columns}


def _measure(run: _Runner, mode, warm_decode, warmup, device, batch_size, G, prefill_timing) -> dict[str, Any]:
    """Warm up and time the prefill and decode calls of `mode`; the timing and state columns."""
    columns: dict[str, Any] = {}
    prefill = None
    if mode in ("prefill", "both"):
        _warm(run.prefill, warmup, device)
        if warm_decode:  # both: decode warms up on the last warm-up prefill's state
            run.adopt()
            _warm(run.decode, warm_decode, device)
        prefill = _time(run.prefill, *prefill_timing, device)
        columns["state_bytes"] = state_bytes(run.state)
    columns.update(_prefill_columns(prefill, batch_size * run.N))
    decode = None
    if mode in ("decode", "both"):
        if prefill is None:  # decode: prefill, warm up, prefill again
            run.start_decoding()
            if warm_decode:
                _warm(run.decode, warm_decode, device)
                run.start_decoding()
        # both: decoding starts from the state the last timed prefill left, at N
        columns["state_bytes"] = state_bytes(run.state)
        run.adopt()
        decode = _time(run.decode, G, 0.0, G, device)
        columns["state_bytes_final"] = state_bytes(run.state)
    columns.update(_decode_columns(decode, batch_size))
    return columns


def _check_arguments(level: str, mode: str, context_len: int, decode_tokens: int) -> None:
    if mode not in MODES:
        raise ValueError(f"decode mode must be one of {', '.join(MODES)}, got {mode!r}")
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    if context_len < 1:
        raise ValueError(f"context length must be >= 1, got {context_len}")
    if mode != "prefill" and decode_tokens < 1:
        raise ValueError(f"decode_tokens must be >= 1 to measure decode, got {decode_tokens}")


class _Runner:
    """The steps the clocks call. Holds the one live state; a new prefill drops the old state
    first, so two states never coexist. The decode step feeds x[:, N + i] at its i-th call.
    ex: the execution mode's prefill, decode and adopt (eager module calls when None)."""

    def __init__(
        self, module: nn.Module, level: str, x: torch.Tensor, context_len: int, autocast, ex: DecodeExecution | None
    ) -> None:
        self.x, self.N, self.autocast = x, context_len, autocast
        kwargs = {"last_only": True} if level == "lm" else {}
        self._prefill = ex.prefill if ex is not None else lambda inputs: module.prefill(inputs, **kwargs)
        self._decode = ex.decode if ex is not None else module.decode
        self._adopt = ex.adopt if ex is not None else None
        self.state: DecodeState | None = None
        self.next = context_len

    def prefill(self) -> None:
        """Prefill N tokens into a fresh state; decoding resumes at position N."""
        self.state = None
        with torch.inference_mode(), self.autocast():
            _, self.state = self._prefill(self.x[:, : self.N])
        self.next = self.N

    def adopt(self) -> None:
        """Untimed, before decode steps: the state as the decode function takes it (a CUDA graph's buffers)."""
        if self._adopt is not None:
            self.state = self._adopt(self.state)

    def start_decoding(self) -> None:
        """An untimed prefill of N tokens, to decode from."""
        self.prefill()
        self.adopt()

    def decode(self) -> None:
        t = self.next
        if t >= self.x.shape[1]:
            raise RuntimeError(f"decode step at position {t}: past the N+G={self.x.shape[1]} positions prepared")
        with torch.inference_mode(), self.autocast():
            _, self.state = self._decode(self.x[:, t : t + 1], self.state)
        self.next = t + 1


# The only calls into the clocks; each synchronises the cell's own device.
def _warm(step: Callable[[], object], n: int, device: torch.device) -> None:
    warm_up(step, n, device=device)


def _time(step: Callable[[], object], repeats: int, min_run_time_s: float, max_repeats: int, device) -> Timing:
    return time_steps(step, repeats, min_run_time_s, max_repeats, device=device)


_PREFILL = ("prefill_ms", "prefill_ms_q25", "prefill_ms_q75", "prefill_samples_ms", "prefill_tokens_per_s")
_DECODE = ("decode_ms_per_token", "decode_ms_q25", "decode_ms_q75", "decode_samples_ms", "decode_tokens_per_s")


def _prefill_columns(timing: Timing | None, tokens: int) -> dict[str, Any]:
    return _timing_columns(_PREFILL, timing, tokens)


def _decode_columns(timing: Timing | None, batch_size: int) -> dict[str, Any]:
    return _timing_columns(_DECODE, timing, batch_size)


def _timing_columns(names: tuple[str, ...], timing: Timing | None, tokens_per_step: int) -> dict[str, Any]:
    """(median, q25, q75, samples, tokens/s) under `names`; all None when that part was not measured."""
    if timing is None:
        return dict.fromkeys(names)
    values = (timing.median_ms, timing.q25_ms, timing.q75_ms, timing.samples_ms)
    return dict(zip(names, (*values, tokens_per_step / (timing.median_ms / 1e3))))


def run(cell: Cell, ctx: RunContext = SILENT) -> list[dict[str, Any]]:
    """Measure one decode cell; returns one row of measurement columns."""
    torch.manual_seed(cell.seed)
    G = cell.settings.decode_tokens if cell.settings is not None else 0
    module, config = build_for(cell)  # max_seq_len covers N + G (Decode.model_needs)
    width = config.vocab_size if cell.level == "lm" else config.d_model
    m = cell.measure
    columns = measure_decode(
        module,
        level=cell.level,
        width=width,
        batch_size=cell.batch_size,
        context_len=cell.seq_len,
        decode_tokens=G,
        device=cell.device,
        mode=cell.mode,
        autocast=lambda: autocast_for(cell),
        warmup=m.warmup,
        repeats=m.repeats,
        min_run_time_s=m.min_run_time_s,
        max_repeats=m.max_repeats,
        execute=lambda x: prepare_decode(cell, module, x, cell.seq_len),
    )
    return [
        {
            **columns,
            "decode_tokens": G,
            "params": sum(p.numel() for p in module.parameters()),
            "d_model": getattr(config, "d_model", None),
            "n_layers": getattr(config, "n_layers", None) if cell.level == "lm" else 1,
        }
    ]
