"""The suite schema reference: one table per section of a suite file, from its JSON Schema
(gam_bench.suite.json_schema, itself generated from the pydantic models)."""

from __future__ import annotations

import json
from typing import Any


def schema_markdown() -> str:
    from gam_bench.suite.json_schema import suite_json_schema

    schema = suite_json_schema()
    defs = schema["$defs"]
    parts = ["## Top level", "", _escape(schema.get("description", "")), "", *_table(schema)]
    for name, section in defs.items():
        if name == "Profile":
            continue
        parts += [f"## {name}", "", _doc(section.get("description", "")), "", *_table(section)]
    return "\n".join(parts)


def _table(section: dict[str, Any]) -> list[str]:
    required = set(section.get("required", ()))
    rows = ["| field | type | default | meaning |", "|---|---|---|---|"]
    for name, prop in section.get("properties", {}).items():
        default = "required" if name in required else _value(prop.get("default"), "default" in prop)
        rows.append(f"| `{name}` | {_type(prop)} | {default} | {_escape(prop.get('description', ''))} |")
    extra = section.get("additionalProperties")
    if isinstance(extra, dict) and extra.get("description"):
        rows.append(f"| *other keys* | any | | {_escape(extra['description'])} |")
    return [*rows, ""]


def _type(prop: dict[str, Any]) -> str:
    """A short type, e.g. `integer > 0`, `list of "block" | "lm"`, `Measure`."""
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})" if name != "Profile" else "Profile"
    if "anyOf" in prop:
        return " or ".join(dict.fromkeys(_type(p) for p in prop["anyOf"]))
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {_type(prop.get('items', {}))}"
    if kind == "object":
        values = prop.get("additionalProperties")
        if isinstance(values, dict) and values:
            return f"mapping to {_type(values)}"
        return "mapping"
    bounds = [
        f"{op} {prop[key]}"
        for key, op in (("exclusiveMinimum", ">"), ("minimum", ">="), ("exclusiveMaximum", "<"), ("maximum", "<="))
        if key in prop
    ]
    return kind + (f" ({', '.join(bounds)})" if bounds else "")


def _value(value: Any, given: bool) -> str:
    return f"`{json.dumps(value)}`" if given else ""


def _doc(text: str) -> str:
    return "\n".join(line.strip() for line in text.splitlines())


def _escape(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|").replace("<", "&lt;")
