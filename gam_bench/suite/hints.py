"""Hints for a suite's validation errors, at any depth of the file:

- an unknown field gets "did you mean" among the fields of the section it is in
  (`measure.repeat` -> 'repeats'), not only at the top level;
- a missing required field, when the same section holds an unknown key close to it, says so
  (`axis:` -> "axes: required field is missing (found 'axis': did you mean 'axes'?)").

No torch here.
"""

from __future__ import annotations

from typing import Any, get_args

from pydantic import BaseModel

from gam_bench.registry import did_you_mean


def error_hint(exc: Any, root: type[BaseModel]) -> str:
    """The hint for a pydantic ValidationError's first error ("" when there is none)."""
    errors = exc.errors()
    first = errors[0]
    loc = _fields(first["loc"])
    if first.get("type") == "extra_forbidden" and loc:
        section = _model_at(_root(exc, root), loc[:-1])
        if section is not None:
            return did_you_mean(str(loc[-1]), section.model_fields, "fields")
    if first.get("type") == "missing" and loc:
        unknown = [
            str(_fields(e["loc"])[-1])
            for e in errors
            if e.get("type") == "extra_forbidden" and _fields(e["loc"])[:-1] == loc[:-1]
        ]
        close = did_you_mean(str(loc[-1]), unknown, None)
        if close:
            found = close.removeprefix(" (did you mean ").removesuffix("?)")
            return f" (found {found}: did you mean {str(loc[-1])!r}?)"
    return ""


def _fields(loc: Any) -> list[Any]:
    """pydantic's loc without union-branch and validator tags (as errors.location_text)."""
    return [p for p in loc if isinstance(p, int) or not ("[" in str(p) or str(p).startswith(("function-", "literal")))]


def _root(exc: Any, root: type[BaseModel]) -> type[BaseModel]:
    """The model that raised `exc`: `root` or a section of it (e.g. PerplexitySettings)."""
    title = getattr(exc, "title", None)
    seen: list[type[BaseModel]] = [root]
    for model in seen:
        if model.__name__ == title:
            return model
        for field in model.model_fields.values():
            nested = _model_of(field.annotation)
            if nested is not None and nested not in seen:
                seen.append(nested)
    return root


def _model_at(model: type[BaseModel] | None, loc: list[Any]) -> type[BaseModel] | None:
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        model = _model_of(field.annotation)
    return model


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (`Measure`, `X | None`, `list[X]`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        model = _model_of(arg)
        if model is not None:
            return model
    return None
