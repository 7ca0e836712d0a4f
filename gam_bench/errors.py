"""The one exception type that means "the user gave bad input".

The CLI catches `UserError` once, prints its one-line message and exits 2, with no
traceback. Library code raises it with a message that names the file, the field and
the value wherever they are known. `one_line` is the one translation of a pydantic
ValidationError into such a line (pydantic is not imported here).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class UserError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""

    exit_code = 2


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep; its text says what is stored where and how to resume (exit 130)."""


def first_error(exc: Any, at: Sequence[Any] = ()) -> tuple[list[Any], str]:
    """(location, message) of a pydantic ValidationError's first error; `at` is prepended to
    the location (where the validated value sits in a larger document)."""
    err = exc.errors()[0]
    return [*at, *err["loc"]], _message(err)


def one_line(exc: Any, at: Sequence[Any] = ()) -> str:
    """A pydantic ValidationError as one line: 'models[1].name: message (got value)'."""
    loc, message = first_error(exc, at)
    path = location_text(loc)
    return f"{path}: {message}" if path else message


def location_text(loc: Sequence[Any]) -> str:
    """pydantic loc -> 'models[1].name'; drops union-branch tags such as 'list[...]'."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif "[" in str(part) or str(part).startswith(("function-", "literal")):
            continue
        else:
            text += f".{part}" if text else str(part)
    return text


def _message(err: dict[str, Any]) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    kind = err.get("type", "")
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return f"unknown field (value {err.get('input')!r})"
    if kind in ("value_error", "assertion_error") or err.get("input") is None:
        return msg
    return f"{msg} (got {err.get('input')!r})"
