"""The model registry: names -> (config class, LM class, block class).

Three ways in, as in lm-evaluation-harness:
- the `@register_model("name", ...)` decorator, for models defined in Python;
- lazy built-in entries (`MODELS.lazy`: name -> module), imported on first use so that
  listing names never imports torch;
- installed plugins, through the entry-point group `gam_bench.models`. An entry point
  names a module (or `module:attr`); importing it runs its `@register_model` calls.

This module imports neither torch nor any model module at import time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from pydantic import ValidationError

from gam_bench.errors import UserError, one_line
from gam_bench.registry import Registry, did_you_mean

ENTRY_POINT_GROUP = "gam_bench.models"


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


# name -> module that registers it when imported (built-ins); listing names needs no import.
MODELS: Registry[ModelSpec] = Registry(
    "model",
    {
        "gam": "gam_bench.models.gam",
        "gam-global-only": "gam_bench.models.gam",
        "gam-local-only": "gam_bench.models.gam",
        "gam-sum-fusion": "gam_bench.models.gam",
        "transformer": "gam_bench.models.transformer",
        "transformer-naive": "gam_bench.models.transformer",
        "mamba": "gam_bench.models.mamba",
        "mamba-paper": "gam_bench.models.mamba",
        "gla": "gam_bench.models.gla",
        "retnet": "gam_bench.models.retnet",
        "swa": "gam_bench.models.swa",
        "hyena": "gam_bench.models.hyena",
        "mamba2": "gam_bench.models.mamba2",
        "gated-deltanet": "gam_bench.models.gated_deltanet",
        "gated-deltanet-hybrid": "gam_bench.models.hybrid",
    },
)
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
        known = MODELS.entries.get(name)
        if known is not None and known.lm_cls is not lm_cls:
            raise ValueError(f"model {name!r} is already registered by {known.lm_cls!r}")
        if MODELS.lazy.get(name, lm_cls.__module__) != lm_cls.__module__:
            raise ValueError(f"model {name!r} is a built-in name (defined in {MODELS.lazy[name]})")
        MODELS.add(
            name,
            ModelSpec(
                name=name,
                family=family,
                config_cls=config,
                lm_cls=lm_cls,
                block_cls=block,
                defaults=dict(defaults or {}),
                description=description,
                backends=backends or (lambda: []),
            ),
        )
        return lm_cls

    return decorate


def _plugin_entry_points() -> list[Any]:
    return list(entry_points(group=ENTRY_POINT_GROUP))


def available() -> list[str]:
    """All model names: built-in, decorator-registered and plugin entry points. Imports nothing heavy."""
    return sorted({*MODELS.names(), *(ep.name for ep in _plugin_entry_points())})


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


def get_spec(name: str) -> ModelSpec:
    """The spec of a registered model, or a UserError with the closest name, listing them all."""
    spec = MODELS.find_loading(name, _load_plugins)
    if spec is None:
        names = available()
        raise UserError(f"unknown model {name!r}{did_you_mean(name, names, None)}; available: {', '.join(names)}")
    return spec


def make_config(name: str, **overrides: Any) -> Any:
    """Validated config for model `name` with `overrides` on top of the variant's defaults."""
    spec = get_spec(name)
    fields = list(spec.config_cls.model_fields)
    unknown = [key for key in overrides if key not in fields]
    if unknown:
        key = unknown[0]
        raise UserError(
            f"model {name!r} has no config field {key!r}{did_you_mean(key, fields, None)}; "
            f"valid fields: {', '.join(fields)}"
        )
    try:
        return spec.config_cls(**{**spec.defaults, **overrides})
    except ValidationError as exc:
        raise UserError(f"model {name!r}: invalid config: {one_line(exc)}") from None
    except (TypeError, ValueError) as exc:  # a plugin's config class that is not pydantic
        raise UserError(f"model {name!r}: invalid config: {str(exc).splitlines()[0]}") from exc


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
