"""The decode task's measurement (issue 14): prefill time, per-token decode latency and state
bytes at one context length N.

Modes
- prefill: time `prefill` of N tokens (a fresh state every call; the LM computes the last
  position's logits only, as generation does).
- decode: one untimed prefill of N tokens, then G = `decode_tokens` decode steps, each timed
  on its own with the device synchronised around it. Step i appends token N+i, so the steps
  see contexts N, N+1, ..., N+G-1 and the state never holds more than N+G positions: the
  latency is that of context N (to within G/N). No step is re-timed on a grown state.
- both: prefill, then decode.

Warmup: `warmup` untimed prefills; for decode, an untimed prefill and min(warmup, G) decode
steps on a state that is then dropped, so warmup too stays within N+G positions (a positional
LM needs max_seq_len >= N+G: see `max_seq_len_needed`). Everything runs in eval mode under
torch.inference_mode, inside `autocast()`. Peak memory is the worker's, around the whole cell.

Columns (None where the mode does not measure them): prefill_ms (median), prefill_ms_q25/_q75,
prefill_samples_ms, prefill_tokens_per_s (B * N / median), decode_ms_per_token (median over
the G steps), decode_ms_q25/_q75, decode_samples_ms (every step, in order),
decode_tokens_per_s (B / median: one token per sequence per step), state_bytes (at N, after
prefill), state_bytes_final (at N+G), backend, decode_backend.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from gam_bench.measure.timing import Timing, time_steps, warm_up
from gam_bench.models.decode import DecodeState, decode_backend, state_bytes

MODES = ("prefill", "decode", "both")
LEVELS = ("lm", "block")


def max_seq_len_needed(context_len: int, decode_tokens: int, mode: str) -> int:
    """The positions a decode cell feeds a model: N, plus G when it decodes."""
    return context_len + (decode_tokens if mode != "prefill" else 0)


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
) -> dict[str, Any]:
    """Measure one (module, B, N, G) point; returns the columns listed in the module docstring.

    module: a decoding LM or block (gam_bench.models.decode) on `device`. width: vocab_size
    (lm) or d_model (block). autocast: a factory of the context each call runs in (e.g.
    torch.autocast for float16). repeats / min_run_time_s / max_repeats: the prefill timing,
    as the throughput task's; decode is timed exactly G times.
    """
    _check_arguments(level, mode, context_len, decode_tokens)
    device = torch.device(device)
    N, G = context_len, decode_tokens
    x = make_inputs(level, width, batch_size, N + (G if mode != "prefill" else 0), device)
    module.eval()
    run = _Runner(module, level, x, N, autocast)
    columns: dict[str, Any] = {"backend": str(getattr(module, "backend", "") or "")}
    columns["decode_backend"] = decode_backend(module) if mode != "prefill" else None
    prefill = None
    if mode in ("prefill", "both"):
        _warm(run.prefill, warmup, device)
        prefill = _time(run.prefill, repeats, min_run_time_s, max_repeats, device)
        columns["state_bytes"] = state_bytes(run.state)
    columns.update(_prefill_columns(prefill, batch_size * N))
    decode = None
    if mode in ("decode", "both"):
        run.start_decoding()
        _warm(run.decode, min(warmup, G), device)
        run.start_decoding()
        columns["state_bytes"] = state_bytes(run.state)
        decode = _time(run.decode, G, 0.0, G, device)
        columns["state_bytes_final"] = state_bytes(run.state)
    columns.update(_decode_columns(decode, batch_size))
    columns.setdefault("state_bytes_final", None)
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
    first, so two states never coexist. The decode step feeds x[:, N + i] at its i-th call."""

    def __init__(self, module: nn.Module, level: str, x: torch.Tensor, context_len: int, autocast) -> None:
        self.module, self.x, self.N, self.autocast = module, x, context_len, autocast
        self.kwargs = {"last_only": True} if level == "lm" else {}
        self.state: DecodeState | None = None
        self.next = context_len

    def prefill(self) -> None:
        self.state = None
        with torch.inference_mode(), self.autocast():
            _, self.state = self.module.prefill(self.x[:, : self.N], **self.kwargs)

    def start_decoding(self) -> None:
        """An untimed prefill of N tokens; decoding resumes at position N."""
        self.prefill()
        self.next = self.N

    def decode(self) -> None:
        t = self.next
        if t >= self.x.shape[1]:
            raise RuntimeError(f"decode step at position {t}: past the N+G={self.x.shape[1]} positions prepared")
        with torch.inference_mode(), self.autocast():
            _, self.state = self.module.decode(self.x[:, t : t + 1], self.state)
        self.next = t + 1


# The only calls into the clocks: adapt these two when measure.timing takes a device.
def _warm(step: Callable[[], object], n: int, device: torch.device) -> None:
    warm_up(step, n)


def _time(step: Callable[[], object], repeats: int, min_run_time_s: float, max_repeats: int, device) -> Timing:
    return time_steps(step, repeats, min_run_time_s, max_repeats)


def _prefill_columns(timing: Timing | None, tokens: int) -> dict[str, Any]:
    if timing is None:
        return dict.fromkeys(
            ["prefill_ms", "prefill_ms_q25", "prefill_ms_q75", "prefill_samples_ms", "prefill_tokens_per_s"]
        )
    return {
        "prefill_ms": timing.median_ms,
        "prefill_ms_q25": timing.q25_ms,
        "prefill_ms_q75": timing.q75_ms,
        "prefill_samples_ms": timing.samples_ms,
        "prefill_tokens_per_s": tokens / (timing.median_ms / 1e3),
    }


def _decode_columns(timing: Timing | None, batch_size: int) -> dict[str, Any]:
    if timing is None:
        return dict.fromkeys(
            ["decode_ms_per_token", "decode_ms_q25", "decode_ms_q75", "decode_samples_ms", "decode_tokens_per_s"]
        )
    return {
        "decode_ms_per_token": timing.median_ms,
        "decode_ms_q25": timing.q25_ms,
        "decode_ms_q75": timing.q75_ms,
        "decode_samples_ms": timing.samples_ms,
        "decode_tokens_per_s": batch_size / (timing.median_ms / 1e3),
    }
