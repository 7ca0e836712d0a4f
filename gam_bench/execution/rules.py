"""The rules of the execution fields (`compile`, `cuda_graph`), checked at load time.

`validate_execution(compile, cuda_graph, device, mode, where)`: a bad combination is a
one-line UserError (CUDA graphs need CUDA; `reduce-overhead` is CUDA graphs inside inductor,
so it is refused on other devices instead of silently running as `default`). No torch here.
"""

from __future__ import annotations

import difflib
from typing import get_args

from gam_bench.errors import UserError
from gam_bench.settings import Compile

COMPILE_MODES: tuple[str, ...] = get_args(Compile)  # eager, default, reduce-overhead, max-autotune
# torch.compile modes that already use CUDA graphs (cudagraph trees) on CUDA.
CUDA_GRAPH_COMPILE_MODES = ("reduce-overhead", "max-autotune")
# Steps a CUDA graph can hold: a throughput forward, and the decode task's decode steps
# (modes decode and both; a prefill stays outside the graph).
CUDA_GRAPH_STEP_MODES = ("forward", "decode", "both")


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
