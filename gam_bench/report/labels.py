"""Labels for models that appear in several configurations within one figure or table.

A model that appears once is labelled by its name ("gam"). When it appears in several
configurations, each gets the name plus the config values that differ between them,
e.g. "gam (impl=fused)" and "gam (impl=reference)", or "gam (seed=1)".
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable
from typing import Any

# Execution fields a stored config leaves out at their defaults (cell ids of eager cells are
# unchanged); a label needs them filled in, or eager rows would read "compile=None".
EXECUTION_DEFAULTS: dict[str, Any] = {"compile": "eager", "cuda_graph": False}


def execution_mode(config: dict[str, Any]) -> dict[str, Any]:
    """The config's compile and cuda_graph, defaults filled in."""
    return {key: config.get(key, default) for key, default in EXECUTION_DEFAULTS.items()}


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def variant_labels(variants: Iterable[tuple[Hashable, str, dict[str, Any]]]) -> dict[Hashable, str]:
    """(key, model, config) triples -> key: label. Config values that differ name the variant."""
    by_model: dict[str, dict[Hashable, dict[str, Any]]] = {}
    for key, model, config in variants:
        by_model.setdefault(model, {})[key] = flatten(config)
    labels: dict[Hashable, str] = {}
    for model, configs in sorted(by_model.items()):
        keys = sorted({k for c in configs.values() for k in c})
        differing = [k for k in keys if len({json.dumps(c.get(k), default=str) for c in configs.values()}) > 1]
        for i, (key, config) in enumerate(sorted(configs.items(), key=lambda kv: str(kv[0]))):
            suffix = ", ".join(f"{k.rsplit('.', 1)[-1]}={config.get(k)}" for k in differing)
            if len(configs) > 1 and not suffix:
                suffix = f"#{i + 1}"  # same config on record: number them
            labels[key] = f"{model} ({suffix})" if suffix else model
    return labels
