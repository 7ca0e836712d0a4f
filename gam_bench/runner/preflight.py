"""Pre-flight: check every cell's model config in the parent, before any cell runs.

Model names were checked when the suite was loaded; config fields and values need the
model classes (which import torch), so they are checked here. Errors name the suite
file and the field: `models[1].overrides.n_head` or `axes.d_modle`.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from gam_bench.errors import UserError
from gam_bench.models import registry
from gam_bench.suite import SuiteConfig


def preflight(config: SuiteConfig, cells: list[dict[str, Any]], source: str) -> None:
    """Raise UserError for the first cell whose model cannot be configured as asked."""
    if not cells:
        raise UserError(f"{source}: the suite expands to no cells")
    seen: set[str] = set()
    for cell in cells:
        key = json.dumps([cell["model"], cell["overrides"], cell["level"]], sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        i = _entry_index(config, cell)
        _check_cell(cell, f"models[{i}]", set(config.models[i].overrides), source)


def _entry_index(config: SuiteConfig, cell: dict[str, Any]) -> int:
    """Index of the models entry a cell came from: same name, preferring one whose overrides are
    all in the cell's (axes win over an entry's overrides, so that may match none)."""
    named = [i for i, entry in enumerate(config.models) if entry.name == cell["model"]]
    exact = [i for i in named if config.models[i].overrides.items() <= cell["overrides"].items()]
    return (exact or named)[0]


def _where(field: str, model_at: str, from_model: set[str]) -> str:
    return f"{model_at}.overrides.{field}" if field in from_model else f"axes.{field}"


def _check_cell(cell: dict[str, Any], model_at: str, from_model: set[str], source: str) -> None:
    name = cell["model"]
    spec = registry.get_spec(name)
    fields = list(spec.config_cls.model_fields)
    for field in cell["overrides"]:
        if field not in fields:
            close = difflib.get_close_matches(field, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (fields: {', '.join(fields)})"
            raise UserError(
                f"{source}: {_where(field, model_at, from_model)}: model {name!r} has no config field {field!r}{hint}"
            )
    try:
        registry.make_config(name, **cell["overrides"])
    except UserError as exc:
        bad = _bad_field(cell["overrides"], str(exc))
        where = _where(bad, model_at, from_model) if bad else f"{model_at}.overrides"
        raise UserError(f"{source}: {where}: {exc}") from None
    if cell["level"] == "block" and spec.block_cls is None:
        raise UserError(f"{source}: level: model {name!r} has no block-level implementation; use level: lm")


def _bad_field(overrides: dict[str, Any], message: str) -> str | None:
    for field in overrides:
        if f"{field}=" in message:
            return field
    return None
