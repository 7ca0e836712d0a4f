"""Pre-flight: check every cell's model config in the parent, before any cell runs, and
resolve what the registry knows about it (family, d_model, n_layers) into the cell.

Model names were checked when the suite was loaded; config fields and values need the
model classes (which import torch), so they are checked here. Errors name the suite
file and the field: `models[1].overrides.n_head` or `axes.d_modle`.
"""

from __future__ import annotations

import json
from typing import Any

from gam_bench.cell import Cell
from gam_bench.errors import UserError
from gam_bench.models import registry
from gam_bench.registry import did_you_mean
from gam_bench.suite import SuiteConfig


def preflight(config: SuiteConfig, cells: list[Cell], source: str) -> list[Cell]:
    """The cells, resolved; UserError for the first whose model cannot be configured as asked."""
    if not cells:
        raise UserError(f"{source}: the suite expands to no cells")
    resolved: dict[str, dict[str, Any]] = {}
    out = []
    for cell in cells:
        key = json.dumps([cell.model, cell.overrides, cell.level], sort_keys=True, default=str)
        if key not in resolved:
            i = _entry_index(config, cell)
            resolved[key] = _check_cell(cell, f"models[{i}]", set(config.models[i].overrides), source)
            if cell.task == "recall":
                _check_recall(cell, resolved[key], f"models[{i}]", set(config.models[i].overrides), source)
        out.append(cell.model_copy(update=resolved[key]))
    return out


def _entry_index(config: SuiteConfig, cell: Cell) -> int:
    """Index of the models entry a cell came from: same name, preferring one whose overrides are
    all in the cell's (axes win over an entry's overrides, so that may match none)."""
    named = [i for i, entry in enumerate(config.models) if entry.name == cell.model]
    exact = [i for i in named if config.models[i].overrides.items() <= cell.overrides.items()]
    return (exact or named)[0]


def _where(field: str, model_at: str, from_model: set[str]) -> str:
    return f"{model_at}.overrides.{field}" if field in from_model else f"axes.{field}"


def _check_cell(cell: Cell, model_at: str, from_model: set[str], source: str) -> dict[str, Any]:
    """The cell's resolved fields (family, d_model, n_layers), or a UserError naming the field."""
    name = cell.model
    spec = registry.get_spec(name)
    fields = list(spec.config_cls.model_fields)
    for field in cell.overrides:
        if field not in fields:
            hint = did_you_mean(field, fields, "fields")
            raise UserError(
                f"{source}: {_where(field, model_at, from_model)}: model {name!r} has no config field {field!r}{hint}"
            )
    try:
        model_config = registry.make_config(name, **cell.overrides)
    except UserError as exc:
        bad = _bad_field(cell.overrides, str(exc))
        where = _where(bad, model_at, from_model) if bad else f"{model_at}.overrides"
        raise UserError(f"{source}: {where}: {exc}") from None
    if cell.level == "block" and spec.block_cls is None:
        raise UserError(f"{source}: level: model {name!r} has no block-level implementation; use level: lm")
    n_layers = 1 if cell.level == "block" else getattr(model_config, "n_layers", None)
    return {"family": spec.family, "d_model": getattr(model_config, "d_model", None), "n_layers": n_layers}


def _check_recall(cell: Cell, resolved: dict[str, Any], model_at: str, from_model: set[str], source: str) -> None:
    """A recall cell sets vocab_size and max_seq_len itself and builds its model at a width and depth."""
    for field, given in (("vocab_size", "recall.vocab_size"), ("max_seq_len", "seq_len")):
        if field in cell.overrides:
            where = _where(field, model_at, from_model)
            raise UserError(f"{source}: {where}: the recall task sets {field} itself (from {given})")
    missing = [f for f in ("d_model", "n_layers") if resolved[f] is None]
    if missing:
        raise UserError(f"{source}: {model_at}.name: model {cell.model!r} has no {' or '.join(missing)} to train at")


def _bad_field(overrides: dict[str, Any], message: str) -> str | None:
    """The override a config error names (`invalid config: <field>: ...` or `<field>=...`)."""
    for field in overrides:
        if f"invalid config: {field}: " in message or f"{field}=" in message:
            return field
    return None
