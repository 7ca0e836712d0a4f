"""The sweep engine: `run_suite(suite, ...)` runs a suite's cells in worker processes.

Imports are lazy so that a spawned worker (which imports `gam_bench.runner.worker`) does
not pay for the parent's orchestration modules.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_suite", "plan"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from gam_bench.runner import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'gam_bench.runner' has no attribute {name!r}")
