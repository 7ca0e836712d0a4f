"""A registry of named things (models, tasks, executors) with lazy entries and one did-you-mean.

    EXECUTORS = Registry("executor", {"local": "gam_bench.runner.local:LocalExecutor"})
    EXECUTORS.get("local")          # imports the module on first use, returns the class
    EXECUTORS.add("mine", MyClass)  # or registered directly

A lazy entry is "module:attr" (the attribute is the entry) or "module" (importing the module
registers the entry, e.g. through a decorator that calls `add`). Listing names imports nothing.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from gam_bench.errors import UserError

T = TypeVar("T")


def did_you_mean(value: str, choices: Iterable[str], listing: str | None = "available") -> str:
    """The hint after an unknown name: ' (did you mean "x"?)', else the listing of choices (or "")."""
    choices = list(choices)
    close = difflib.get_close_matches(value, choices, n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" ({listing}: {', '.join(choices)})" if listing else ""


class Registry(Generic[T]):
    """Names -> entries of one kind; lazy "module:attr" entries are imported on first `get`."""

    def __init__(self, kind: str, lazy: dict[str, str] | None = None) -> None:
        self.kind = kind
        self.lazy: dict[str, str] = dict(lazy or {})
        self.entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> None:
        self.entries[name] = entry

    def names(self) -> list[str]:
        """Every name, lazy or loaded, in the order they were given (imports nothing)."""
        return list(dict.fromkeys([*self.lazy, *self.entries]))

    def __contains__(self, name: object) -> bool:
        return name in self.lazy or name in self.entries

    def copy(self) -> Registry[T]:
        """An independent registry with the same entries (tests register into a copy)."""
        out: Registry[T] = Registry(self.kind, self.lazy)
        out.entries = dict(self.entries)
        return out

    def find(self, name: str) -> T | None:
        """The entry, importing a lazy one; None for an unknown name. Import errors propagate."""
        if name not in self.entries and name in self.lazy:
            module, _, attr = self.lazy[name].partition(":")
            loaded = importlib.import_module(module)
            if attr:
                self.entries[name] = getattr(loaded, attr)
        return self.entries.get(name)

    def find_loading(self, name: str, load_plugins: Callable[[], None]) -> T | None:
        """`find`, and once more after `load_plugins()` (entry points) when the name is unknown."""
        entry = self.find(name)
        if entry is None:
            load_plugins()
            entry = self.find(name)
        return entry

    def get(self, name: str) -> T:
        """The entry `name`, or a one-line UserError with the closest name."""
        entry = self.find(name)
        if entry is None:
            raise UserError(f"unknown {self.kind} {name!r}{did_you_mean(name, self.names())}")
        return entry

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
