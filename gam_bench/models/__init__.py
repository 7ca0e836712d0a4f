"""The model zoo. Public API: `build`, `build_block`, `available`, `register_model`.

Importing this package does not import torch; a model module is imported when the
model is first asked for.
"""

from gam_bench.models.registry import (
    ModelSpec,
    available,
    build,
    build_block,
    get_spec,
    make_config,
    register_model,
)

__all__ = ["ModelSpec", "available", "build", "build_block", "get_spec", "make_config", "register_model"]
