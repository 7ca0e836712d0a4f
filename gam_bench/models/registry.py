"""The model registry: names -> (config class, LM class, block class).

Three ways in, as in lm-evaluation-harness:
- the `@register_model("name", ...)` decorator, for models defined in Python;
- lazy built-in entries (`_BUILTIN`: name -> module), imported on first use so that
  listing names never imports torch;
- installed plugins, through the entry-point group `gam_bench.models`. An entry point
  names a module (or `module:attr`); importing it runs its `@register_model` calls.

This module imports neither torch nor any model module at import time.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from gam_bench.errors import UserError

ENTRY_POINT_GROUP = "gam_bench.models"

# name -> module that registers it when imported. Listing names needs no import.
_BUILTIN: dict[str, str] = {
    "gam": "gam_bench.models.gam",
    "gam-global-only": "gam_bench.models.gam",
    "gam-local-only": "gam_bench.models.gam",
    "gam-sum-fusion": "gam_bench.models.gam",
    "transformer": "gam_bench.models.transformer",
    "transformer-naive": "gam_bench.models.transformer",
    "mamba": "gam_bench.models.mamba",
    "mamba-paper": "gam_bench.models.mamba",
}


@dataclass(frozen=True)
class ModelSpec:
    """Everything the harness needs to know about one registered model.

    config_cls: a pydantic model with `extra="forbid"`; `config_cls(**fields)` builds
        a config. Its fields include vocab_size, max_seq_len, d_model, n_layers, dropout.
    lm_cls: `lm_cls(config)` -> nn.Module with forward(idx[B, T]) -> logits[B, T, V].
    block_cls: `block_cls(config)` -> nn.Module with forward(x[B, T, D]) -> [B, T, D].
    defaults: overrides that define this variant (e.g. {"impl": "naive"}).
    backends: () -> list of backend names that can run on this machine.
    """

    name: str
    family: str
    config_cls: type
    lm_cls: Callable[..., Any]
    block_cls: Callable[..., Any] | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    backends: Callable[[], list[str]] = lambda: []


_REGISTRY: dict[str, ModelSpec] = {}
_plugins_loaded = False


def register_model(
    name: str,
    *,
    family: str,
    config: type,
    block: Callable[..., Any] | None = None,
    defaults: dict[str, Any] | None = None,
    description: str = "",
    backends: Callable[[], list[str]] | None = None,
) -> Callable[[Any], Any]:
    """Class decorator: `@register_model("gam", family="gam", config=GAMConfig, block=GAMBlock)`.

    Stack several decorators on one class to register variants with other `defaults`.
    """

    def decorate(lm_cls: Any) -> Any:
        if name in _REGISTRY and _REGISTRY[name].lm_cls is not lm_cls:
            raise ValueError(f"model {name!r} is already registered by {_REGISTRY[name].lm_cls!r}")
        if _BUILTIN.get(name, lm_cls.__module__) != lm_cls.__module__:
            raise ValueError(f"model {name!r} is a built-in name (defined in {_BUILTIN[name]})")
        _REGISTRY[name] = ModelSpec(
            name=name,
            family=family,
            config_cls=config,
            lm_cls=lm_cls,
            block_cls=block,
            defaults=dict(defaults or {}),
            description=description,
            backends=backends or (lambda: []),
        )
        return lm_cls

    return decorate


def _plugin_entry_points() -> list[Any]:
    return list(entry_points(group=ENTRY_POINT_GROUP))


def available() -> list[str]:
    """All model names: built-in, decorator-registered and plugin entry points. Imports nothing heavy."""
    names = set(_BUILTIN) | set(_REGISTRY) | {ep.name for ep in _plugin_entry_points()}
    return sorted(names)


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in _plugin_entry_points():
        try:
            ep.load()
        except Exception as exc:  # a broken plugin must not hide the others
            raise UserError(f"model plugin {ep.name!r} ({ep.value}) failed to import: {exc}") from exc


def _did_you_mean(value: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(value, choices, n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def get_spec(name: str) -> ModelSpec:
    """The spec of a registered model, or a UserError listing the valid names."""
    if name not in _REGISTRY and name in _BUILTIN:
        importlib.import_module(_BUILTIN[name])
    if name not in _REGISTRY:
        _load_plugins()
    if name not in _REGISTRY:
        names = available()
        raise UserError(f"unknown model {name!r}.{_did_you_mean(name, names)} Available: {', '.join(names)}")
    return _REGISTRY[name]


def make_config(name: str, **overrides: Any) -> Any:
    """Validated config for model `name` with `overrides` on top of the variant's defaults."""
    spec = get_spec(name)
    fields = list(spec.config_cls.model_fields)
    unknown = [key for key in overrides if key not in fields]
    if unknown:
        key = unknown[0]
        raise UserError(
            f"model {name!r} has no config field {key!r}.{_did_you_mean(key, fields)} Valid fields: {', '.join(fields)}"
        )
    try:
        return spec.config_cls(**{**spec.defaults, **overrides})
    except Exception as exc:  # pydantic.ValidationError: keep it to one line
        raise UserError(f"model {name!r}: invalid config: {_one_line(exc)}") from exc


def _one_line(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        return "; ".join(_one_error(e) for e in errors())
    return str(exc).splitlines()[0]


def _one_error(error: dict) -> str:
    """`field=value: message`; a whole-config (model validator) error has no field."""
    loc = ".".join(map(str, error["loc"]))
    return f"{loc}={error.get('input')!r}: {error['msg']}" if loc else error["msg"]


def build(name: str, **overrides: Any) -> Any:
    """Build the causal LM `name`: forward(idx[B, T]) -> logits[B, T, vocab]."""
    spec = get_spec(name)
    return spec.lm_cls(make_config(name, **overrides))


def build_block(name: str, **overrides: Any) -> Any:
    """Build one block of model `name`: forward(x[B, T, D]) -> [B, T, D]."""
    spec = get_spec(name)
    if spec.block_cls is None:
        raise UserError(f"model {name!r} has no block-level implementation; use level: lm")
    return spec.block_cls(make_config(name, **overrides))
