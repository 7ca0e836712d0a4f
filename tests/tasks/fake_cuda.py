"""Fakes of `torch.cuda` for the CPU tests of CUDA-graph capture.

`FakeCuda` checks arguments the way torch/cuda/graphs.py and streams.py use them and logs
the calls; its replays run nothing. `ReplayingCuda` also does what a replay does: during
capture it records every aten op the step dispatches (with its input and output tensors),
and a replay re-runs those ops on the same tensors, writing each result into the tensor the
capture produced, as a CUDA graph re-runs its kernels on fixed addresses. Python code in
the step does not run again, so a step that relies on host work (a Python int, a new
tensor object) gives the wrong answer here as it would on a GPU.
"""

from __future__ import annotations

import contextlib

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class FakeCuda:
    """Stands in for `torch.cuda`; checks arguments the way torch/cuda/graphs.py and streams.py use them."""

    class Stream:
        def __init__(self, name: str = "side"):
            self.name = name

        def wait_stream(self, stream: object) -> None:
            assert isinstance(stream, FakeCuda.Stream), f"wait_stream needs a Stream, got {stream!r}"
            FakeCuda.log.append(("wait", self.name, stream.name))

    class CUDAGraph:
        def replay(self) -> None:
            assert self.captured, "replay before capture_end"
            FakeCuda.log.append(("replay",))

    log: list = []

    def __init__(self):
        FakeCuda.log = []
        self.default = FakeCuda.Stream("default")
        self.current = self.default
        self.capturing = False

    def current_stream(self) -> FakeCuda.Stream:
        return self.current

    @contextlib.contextmanager
    def stream(self, stream: FakeCuda.Stream):
        assert isinstance(stream, FakeCuda.Stream)
        previous, self.current = self.current, stream
        try:
            yield
        finally:
            self.current = previous

    @contextlib.contextmanager
    def graph(self, cuda_graph, pool=None, stream=None, capture_error_mode="global"):
        assert isinstance(cuda_graph, FakeCuda.CUDAGraph), f"graph() needs a CUDAGraph, got {cuda_graph!r}"
        assert capture_error_mode in ("global", "thread_local", "relaxed")
        assert not self.capturing, "only one capture may be underway at a time"
        previous, self.current, self.capturing = self.current, FakeCuda.Stream("capture"), True
        cuda_graph.captured = False
        FakeCuda.log.append(("capture_begin",))
        try:
            yield
        finally:
            cuda_graph.captured = True
            self.current, self.capturing = previous, False
            FakeCuda.log.append(("capture_end",))

    def synchronize(self) -> None:
        FakeCuda.log.append(("sync",))


class _Recorder(TorchDispatchMode):
    """Records (op, args, kwargs, outputs) of every aten op dispatched inside it."""

    def __init__(self):
        super().__init__()
        self.ops: list = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.ops.append((func, args, kwargs, out))
        return out


class ReplayingCuda(FakeCuda):
    """FakeCuda whose graphs replay the captured aten ops on the captured tensors."""

    class CUDAGraph(FakeCuda.CUDAGraph):
        ops: list = []

        def replay(self) -> None:
            super().replay()
            with torch.inference_mode():
                for func, args, kwargs, recorded in self.ops:
                    _write(recorded, func(*args, **kwargs))

    @contextlib.contextmanager
    def graph(self, cuda_graph, pool=None, stream=None, capture_error_mode="global"):
        with super().graph(cuda_graph, pool, stream, capture_error_mode):
            with _Recorder() as recorder:
                yield
        cuda_graph.ops = recorder.ops


def _write(recorded, fresh) -> None:
    """Put a re-run op's results where the capture's were: a view or in-place result already is."""
    for old, new in zip(tree_leaves(recorded), tree_leaves(fresh)):
        if isinstance(old, torch.Tensor) and old.untyped_storage().data_ptr() != new.untyped_storage().data_ptr():
            old.copy_(new)
