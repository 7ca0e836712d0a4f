"""Peak live tensor-storage bytes of one step: a deterministic memory figure on every device.

`TensorMemory` is a `TorchDispatchMode`. On entry it seeds itself with the storages of the
tensors reachable from `roots` (see `tensors_of`: the step function's closure, modules'
parameters, gradients and buffers, optimizer state, containers), or, with `roots=None`, of
every tensor alive in the process (after a `gc.collect()`; ~0.2 s with torch imported, and
dependent on what else the process holds). Inside, every op's output storages are added; a weakref on each
storage (the Python storage object lives exactly as long as the C++ storage) subtracts it
when it dies. The peak of the running total is taken right after each op, while the op's
inputs are still alive, so it counts everything live during the step: inputs, parameters,
gradients, optimizer state, activations saved for backward and temporaries.

Storages are keyed by identity, so views and in-place ops (which return a view of, or the
same, storage) are counted once; a storage resized in place (`out=` ops, `resize_`) is
re-read. Only storages on `device` count (all devices if None).

Relation to the CUDA allocator: `torch.cuda.max_memory_allocated()` after
`reset_peak_memory_stats()` counts the same live allocations, each rounded up to 512 bytes
(so it is >= this figure by < 512 B per live tensor), plus allocations this mode cannot see:
workspaces a kernel allocates and frees inside one op (cuBLAS/cuDNN workspace, SDPA
internals), tensors that exist only in C++ with no Python object at entry (none at the
start of a counted step) and, with `roots`, tensors alive at entry that the roots do not
reach (module-level caches; created inside the step they are counted). It excludes the
caching allocator's reserved-but-free memory (`max_memory_reserved`) and the CUDA context.
On the CPU, RSS peaks approximate this figure badly: glibc arenas, freed-but-unreturned
pages and library buffers blur them.

Determinism: the figure depends only on the sequence of ops and the tensors alive at
entry, not on the allocator, the clock or other processes; with `roots`, not on what else
the process holds either (cells that ran before in the same worker).

Usage, also nested with `FlopCounterMode` (either order) so that one step is counted once:

    with TensorMemory(device, roots=(step,)) as tm:
        step()
    tm.peak_bytes
"""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils._python_dispatch import is_traceable_wrapper_subclass
from torch.utils._pytree import tree_leaves

from gam_bench.measure.eager_mode import EagerDispatchMode


def tensors_of(*roots: object) -> Iterator[torch.Tensor]:
    """Tensors reachable from `roots`: tensors (and leaf gradients), modules (parameters,
    buffers, tensor attributes), optimizers (state), dicts/lists/tuples/sets, and functions
    (closure cells and defaults, not globals). Each object is visited once."""
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            yield obj
            if obj.is_leaf and obj.grad is not None:
                yield obj.grad
        elif isinstance(obj, torch.nn.Module):
            stack.extend(obj.parameters())
            stack.extend(obj.buffers())
            stack.extend(value for m in obj.modules() for value in vars(m).values() if isinstance(value, torch.Tensor))
        elif isinstance(obj, torch.optim.Optimizer):
            stack.extend(obj.state.values())
            stack.extend(group["params"] for group in obj.param_groups)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif callable(obj) and hasattr(obj, "__code__"):
            stack.extend(cell.cell_contents for cell in (obj.__closure__ or ()) if _filled(cell))
            stack.extend(obj.__defaults__ or ())
        elif hasattr(obj, "__self__") and hasattr(obj, "__func__"):  # a bound method
            stack.extend((obj.__self__, obj.__func__))


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True


def _live_tensors() -> Iterator[torch.Tensor]:
    gc.collect()
    for obj in gc.get_objects():
        if issubclass(type(obj), torch.Tensor):  # not isinstance: lazy module proxies warn on __class__
            yield obj


_PLAIN = (torch.Tensor, torch.nn.Parameter)  # no wrapper subclass: one storage, no flattening


def _storages(t: torch.Tensor) -> list[torch.UntypedStorage]:
    """The untyped storages behind `t` (several for a wrapper subclass; none for sparse/meta-less)."""
    if type(t) not in _PLAIN and is_traceable_wrapper_subclass(t):
        attrs, _ = t.__tensor_flatten__()
        return [st for name in attrs for st in _storages(getattr(t, name))]
    try:
        return [t.untyped_storage()]
    except (RuntimeError, NotImplementedError):  # sparse and other storage-less layouts
        return []


class TensorMemory(EagerDispatchMode):
    """Track live tensor-storage bytes while active; `peak_bytes` is the high-water mark.

    `roots`: objects whose tensors are live at entry (see `tensors_of`); None: every live tensor.
    `observe(func)`: called with every op before it runs, so another watcher needs no mode of its own.
    One use per instance (the roots are not kept).
    Attributes: `entry_bytes` (live at entry), `peak_bytes` (the peak, entry included),
    `current_bytes` (live now, while active), `device` (the filter, or None for all)."""

    def __init__(
        self, device: torch.device | str | None = None, roots: tuple | None = None, observe: Any = None
    ) -> None:
        super().__init__()
        self._observe = observe  # called with every dispatched op (e.g. provenance.SDPAKernels.observe)
        self._scan = roots is None
        self._roots = tuple(roots or ())  # dropped after seeding, so that their frees are seen
        self.device = torch.device(device) if device is not None else None
        self.entry_bytes = 0
        self.peak_bytes = 0
        self.current_bytes = 0
        self._live: dict[int, tuple[weakref.ref, int]] = {}  # id(storage) -> (weakref, nbytes)
        self._lock = threading.Lock()  # backward may run on autograd device threads

    def __enter__(self) -> TensorMemory:
        self._live.clear()
        self.current_bytes = self.peak_bytes = 0
        for t in _live_tensors() if self._scan else tensors_of(*self._roots):
            self._seed(t)
        self._roots = ()
        self.entry_bytes = self.peak_bytes = self.current_bytes
        return super().__enter__()

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        with self._lock:
            self._live.clear()  # dropping the weakrefs cancels their callbacks

    @property
    def step_peak_bytes(self) -> int:
        """The peak above what was live at entry."""
        return self.peak_bytes - self.entry_bytes

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if self._observe is not None:
            self._observe(func)
        out = func(*args, **(kwargs or {}))
        leaves = (out,) if type(out) in _PLAIN else tree_leaves(out)  # most ops: one plain tensor
        for leaf in leaves:
            if isinstance(leaf, torch.Tensor):
                self._track(leaf)
        with self._lock:
            if self.current_bytes > self.peak_bytes:
                self.peak_bytes = self.current_bytes
        return out

    def _seed(self, t: torch.Tensor) -> None:
        try:
            self._track(t)
            if t.is_leaf and t.grad is not None:
                self._track(t.grad)  # found by the gc scan only through its owner
        except Exception:  # noqa: BLE001 - an exotic tensor (fake, functional) holds no real memory
            pass

    def _track(self, t: torch.Tensor) -> None:
        for st in _storages(t):
            if self.device is not None and not _same_device(st.device, self.device):
                continue
            key, nbytes = id(st), st.nbytes()
            with self._lock:
                known = self._live.get(key)
                if known is not None and known[0]() is st:
                    self.current_bytes += nbytes - known[1]  # resized in place, or unchanged
                    self._live[key] = (known[0], nbytes)
                    continue
                self._live[key] = (weakref.ref(st, lambda _ref, key=key: self._release(key)), nbytes)
                self.current_bytes += nbytes

    def _release(self, key: int) -> None:
        with self._lock:
            entry = self._live.pop(key, None)
            if entry is not None:
                self.current_bytes -= entry[1]


def _same_device(have: torch.device, want: torch.device) -> bool:
    return have.type == want.type and (want.index is None or have.index == want.index)
