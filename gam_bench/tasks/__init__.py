"""Tasks: what a worker does with one cell, each a `Task` (gam_bench.tasks.base) in its own package.

Three ways in, as for models (gam_bench.models.registry):
- the `@register_task` class decorator, for a task defined in Python (a suite's `plugins:`
  module, imported in the parent and in every worker);
- lazy built-in entries (`TASKS.lazy`: name -> "module:attr"), imported on first use;
- installed plugins, through the entry-point group `gam_bench.tasks`: an entry point names a
  module (importing it runs its `@register_task`) or `module:attr` (a Task class or instance).

A built-in task is a package `gam_bench/tasks/<name>/`: `__init__.py` declares the task (no
torch), `settings.py` its settings model, `measure.py` its work (torch). Importing this
module imports neither torch nor any task.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from gam_bench.errors import UserError
from gam_bench.registry import Registry, did_you_mean
from gam_bench.tasks.base import Task

ENTRY_POINT_GROUP = "gam_bench.tasks"

TASKS: Registry[Task] = Registry(
    "task",
    {
        "throughput": "gam_bench.tasks.throughput:TASK",
        "perplexity": "gam_bench.tasks.perplexity:TASK",
        "decode": "gam_bench.tasks.decode:TASK",
        "recall": "gam_bench.tasks.recall:TASK",
        "recall_distance": "gam_bench.tasks.recall_distance:TASK",
    },
)
_plugins_loaded = False


def register_task(name: str) -> Callable[[type[Task]], type[Task]]:
    """Class decorator: `@register_task("energy") class Energy(Task): ...` registers an instance."""

    def decorate(cls: type[Task]) -> type[Task]:
        if name in TASKS.lazy:
            raise ValueError(f"task {name!r} is a built-in name (defined in {TASKS.lazy[name]})")
        known = TASKS.entries.get(name)
        if known is not None and type(known).__qualname__ != cls.__qualname__:
            raise ValueError(f"task {name!r} is already registered by {type(known)!r}")
        cls.name = name
        TASKS.add(name, cls())
        return cls

    return decorate


def _entry_points() -> list[Any]:
    return list(entry_points(group=ENTRY_POINT_GROUP))


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in _entry_points():
        try:
            loaded = ep.load()
        except Exception as exc:  # a broken plugin must not hide the others
            raise UserError(f"task plugin {ep.name!r} ({ep.value}) failed to import: {exc}") from exc
        if isinstance(loaded, type) and issubclass(loaded, Task):
            loaded = loaded()
        if isinstance(loaded, Task) and ep.name not in TASKS:
            loaded.name = ep.name  # the task is known by its entry point's name
            TASKS.add(ep.name, loaded)


def available() -> list[str]:
    """Every task name: built-in, registered and entry points (imports no task)."""
    return list(dict.fromkeys([*TASKS.names(), *(ep.name for ep in _entry_points())]))


def get_task(name: str) -> Task:
    """The task `name`, or a one-line UserError with the closest name."""
    task = TASKS.find_loading(name, _load_plugins)
    if task is None:
        raise UserError(f"unknown task {name!r}{did_you_mean(name, available())}")
    return task


def all_tasks() -> list[Task]:
    """Every task, built-in and registered (entry points loaded), in registration order."""
    _load_plugins()
    return [get_task(name) for name in TASKS.names()]
