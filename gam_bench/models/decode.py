"""Incremental decoding: one interface for every model family.

A model (LM or block) that decodes has two methods, sharing the full model's weights:

    prefill(x[B, T]) -> (out[B, T, ...], state)     # the context, in one parallel pass
    decode(x[B, 1], state) -> (out[B, 1, ...], state)  # one more token

x is token ids (B, T) at the LM level and activations (B, T, D) at the block level; out is
the full forward's output at those positions (logits or activations). `decode` returns
the new state and may update the one it was given in place (the CUDA kernels do), so the
old state must not be reused. The state is a `DecodeState` dataclass of tensors (nested
states and lists of them allowed); `state_bytes(state)` is the bytes of its tensors'
storage. Positions are host ints, never tensors, so they count no bytes.

`supports_decode` tells whether a model class, module or registry spec has the capability;
`check_decode_capability` is the load-time check a suite with a decode cell runs, so a
plugin model without it is a one-line UserError before the sweep, never a crash in it.

A decode step can be captured into a CUDA graph only when its state keeps its shapes
(GAM's window, Mamba's conv and SSM states; not a KV cache, which grows by one position per
token). A block class says so with `decode_state_grows` (`state_grows` reads it; None when
a plugin does not say), and `copy_state_` writes a step's new state into the captured
step's static buffers, refusing a state whose shapes or host values changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import torch

from gam_bench.errors import UserError

DECODE_METHODS = ("prefill", "decode")


@runtime_checkable
class Decoder(Protocol):
    """What a decoding module provides (LM or block)."""

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, DecodeState]: ...

    def decode(self, x: torch.Tensor, state: DecodeState) -> tuple[torch.Tensor, DecodeState]: ...


@dataclasses.dataclass
class DecodeState:
    """Base of every family's state: a dataclass whose fields hold tensors (or states, lists
    of them, or plain host values such as a position, which are not state bytes)."""

    def tensors(self) -> Iterator[torch.Tensor]:
        """Every tensor of the state, nested states included."""
        for f in dataclasses.fields(self):
            yield from _tensors(getattr(self, f.name))


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, DecodeState):
        yield from value.tensors()
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)


def state_bytes(state: DecodeState) -> int:
    """Bytes of storage held by the state's tensors; a storage shared by two tensors counts once."""
    storages = {}
    for t in state.tensors():
        storage = t.untyped_storage()
        storages[(t.device, storage.data_ptr())] = storage.nbytes()
    return sum(storages.values())


@dataclasses.dataclass
class LMState(DecodeState):
    """An LM's state: how many tokens it has seen (the next position) and one state per layer."""

    position: int
    layers: list[DecodeState]


def supports_decode(obj: Any, level: str = "lm") -> bool:
    """Does `obj` (a ModelSpec, a module class or a module) have prefill and decode?

    For a ModelSpec, `level` picks the LM class ("lm") or the block class ("block")."""
    target = obj
    if hasattr(obj, "lm_cls") and hasattr(obj, "block_cls"):  # a registry ModelSpec
        target = obj.block_cls if level == "block" else obj.lm_cls
    return target is not None and all(callable(getattr(target, m, None)) for m in DECODE_METHODS)


def check_decode_capability(name: str, level: str, where: str = "") -> None:
    """UserError unless registered model `name` decodes at `level`. `where` prefixes the
    message (e.g. "suites/decode.yaml: models")."""
    from gam_bench.models.registry import get_spec

    if not supports_decode(get_spec(name), level):
        prefix = f"{where}: " if where else ""
        raise UserError(
            f"{prefix}model {name!r} cannot run task 'decode' at level {level!r}: its "
            f"{'block' if level == 'block' else 'LM'} class has no prefill/decode methods "
            "(see gam_bench.models.decode); remove it from the decode suite"
        )


def state_grows(obj: Any) -> bool | None:
    """The `decode_state_grows` of a ModelSpec's block class, or of a block class or module; None when unsaid."""
    value = getattr(getattr(obj, "block_cls", obj), "decode_state_grows", None)
    return value if isinstance(value, bool) else None


def copy_state_(dst: DecodeState, src: DecodeState) -> DecodeState:
    """Write state `src` into `dst`'s tensors in place (a captured decode step's static buffers); returns dst.

    ValueError when the two differ in structure, a tensor's shape or dtype, or a host value
    (e.g. an LM's position): such a state cannot live in fixed buffers.
    """
    if type(dst) is not type(src):
        raise ValueError(f"state type changed: {type(dst).__name__} -> {type(src).__name__}")
    for f in dataclasses.fields(dst):
        _copy_value(getattr(dst, f.name), getattr(src, f.name), f"{type(dst).__name__}.{f.name}")
    return dst


def _copy_value(dst: Any, src: Any, where: str) -> None:
    if isinstance(dst, torch.Tensor) and isinstance(src, torch.Tensor):
        if dst.shape != src.shape or dst.dtype != src.dtype:
            raise ValueError(
                f"{where} changed from {tuple(dst.shape)} {dst.dtype} to {tuple(src.shape)} {src.dtype}: "
                "the state does not keep its size"
            )
        if dst is not src:
            dst.copy_(src)
    elif isinstance(dst, DecodeState) and isinstance(src, DecodeState):
        copy_state_(dst, src)
    elif isinstance(dst, (list, tuple)) and isinstance(src, (list, tuple)) and len(dst) == len(src):
        for i, (d, s) in enumerate(zip(dst, src)):
            _copy_value(d, s, f"{where}[{i}]")
    elif dst != src:
        raise ValueError(f"{where} changed from {dst!r} to {src!r}: a host value a captured step cannot follow")


def check_one_token(x: torch.Tensor) -> None:
    """decode takes exactly one new position: x is (B, 1) or (B, 1, D)."""
    if x.dim() < 2 or x.shape[1] != 1:
        raise ValueError(f"decode takes one token per call, got input of shape {tuple(x.shape)}")


def decode_backend(module: Any) -> str:
    """The implementation `decode` runs: the module's `decode_backend`, else its `backend`."""
    return str(getattr(module, "decode_backend", None) or getattr(module, "backend", "") or "")
