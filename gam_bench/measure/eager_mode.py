"""`EagerDispatchMode`: the base of gam-bench's dispatch modes, which only ever watch eager steps.

torch wraps a `TorchDispatchMode` subclass's `__torch_dispatch__` in `torch._dynamo.disable`
(`_should_skip_dynamo`), so that a compiled frame does not trace into it. The wrapper
imports torch._dynamo on the first op (1.3 s on the 2-core CPU, in every worker) and adds a
Python call to every op. gam-bench's modes (tensor memory, SDPA kernels) run around the
untimed counted step, which is always the eager step, so they opt out.
"""

from __future__ import annotations

from torch.utils._python_dispatch import TorchDispatchMode


class EagerDispatchMode(TorchDispatchMode):
    """A TorchDispatchMode whose `__torch_dispatch__` torch does not wrap for dynamo."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False
