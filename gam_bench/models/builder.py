"""The one way to build a cell's model: resolve its full config once, then build it.

`resolve_config(name, overrides, needs)` applies one rule each for the two fields a task
decides (`needs`, the task's `ModelNeeds`):
- `max_seq_len`: the positions the task feeds the model, unless the overrides give it, in
  which case it must be at least that many (UserError otherwise);
- `vocab_size`: the task's vocabulary where it has one (recall's settings, perplexity's
  tokenizer); an override that differs is refused (UserError); else the model's own.
The task's config defaults (e.g. its `dropout`) go under the overrides, for the fields the
model has. Pre-flight resolves every cell's config this way and carries it on the cell
(`Cell.resolved_config`); `build_for(cell)` builds from that (resolving on the spot for a cell
that did not go through pre-flight, or when the task learns its vocabulary only in the
worker). `build_module(name, level, config)` makes the block or the LM.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gam_bench.errors import UserError
from gam_bench.models import registry
from gam_bench.tasks.base import ModelNeeds


def resolve_config(name: str, overrides: dict[str, Any], needs: ModelNeeds) -> Any:
    """The validated config of model `name` for a cell with these overrides and needs."""
    fields = registry.get_spec(name).config_cls.model_fields
    values = {**{k: v for k, v in needs.defaults.items() if k in fields}, **overrides}
    if needs.vocab_size is not None and "vocab_size" in fields:
        given = overrides.get("vocab_size", needs.vocab_size)
        if given != needs.vocab_size:
            raise UserError(f"model {name!r}: vocab_size={given} conflicts with {needs.vocab_from}")
        values["vocab_size"] = needs.vocab_size
    if "max_seq_len" in fields:
        given = values.setdefault("max_seq_len", needs.positions)
        if given < needs.positions:
            raise UserError(
                f"model {name!r}: max_seq_len={given} is below the {needs.positions} positions {needs.who} feeds it"
            )
    return registry.make_config(name, **values)


def config_fields(config: Any) -> dict[str, Any] | None:
    """A resolved config as plain fields, to carry on a cell (None for a config that is not pydantic)."""
    dump = getattr(config, "model_dump", None)
    return dump() if callable(dump) else None


def build_module(name: str, level: str, config: Any) -> Any:
    """The block (level "block") or the LM of model `name` from its validated config."""
    spec = registry.get_spec(name)
    if level == "lm":
        return spec.lm_cls(config)
    if spec.block_cls is None:
        raise UserError(f"model {name!r} has no block-level implementation; use level: lm")
    return spec.block_cls(config)


def build_for(cell: Any, **late: Any) -> tuple[Any, Any]:
    """(the cell's model on its device, its config). late: `ModelNeeds` fields the task knows
    only now (perplexity: its tokenizer's vocab_size and vocab_from)."""
    import torch

    config = None
    if cell.resolved_config is not None and not late:
        config = registry.get_spec(cell.model).config_cls.model_validate(cell.resolved_config)
    if config is None:
        config = resolve_config(cell.model, cell.overrides, replace(cell.task_spec.model_needs(cell), **late))
    return build_module(cell.model, cell.level, config).to(torch.device(cell.device)), config
