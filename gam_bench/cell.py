"""The cell: one measurement of a sweep, as `expand` makes it from a suite and a worker runs it.

A `Cell` is frozen and typed. It crosses the worker pipe and Ray as it is (pickle).

Identity: `cell_id` is the sha256 (16 hex digits) of the cell's canonical JSON
(`config_json`, also stored with every row): its identity fields with sorted keys. The
fields of `_LEGACY` are always in it, as they always were. Any field added later is in it
only while it differs from its default, so adding a field with a default never changes
the id of an existing cell. The same holds for a sub-field added later to a legacy field
(`_LATER_SUBFIELDS`: `measure.processes`). The resolved fields (`family`, `d_model`,
`n_layers`, filled in by the runner's pre-flight from the model registry, and
`peak_flops_per_s`, this machine's calibrated matmul peak) are never in it.

Execution: `compile` (eager | default | reduce-overhead | max-autotune) and `cuda_graph`
are generic cell fields (execution/); pre-flight refuses them for a task whose
capabilities do not include them.

Task settings: one field, `settings`, holds the cell's task settings (the task's
`settings` model, or None for a task without settings): a union keyed by `task`, validated
through the task. In the identity (and so the cell_id) it appears under the task's name, as
the per-task fields it replaced did: `perplexity` is always there (null for every other
task: it was a legacy field), any other task's only when it has settings. A recall cell
holds one point of its suite's sweep (one num_kv_pairs, one lr), and takes its batch size
and seed from those settings (`Task.points`). A task adds nothing here.

This module does not import torch.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, model_validator

from gam_bench.settings import Compile, DType, Level, Limits, Measure
from gam_bench.tasks import get_task
from gam_bench.tasks.base import Task

if TYPE_CHECKING:
    from gam_bench.suite.schema import Suite, SuiteConfig

# Filled in by pre-flight; never part of a cell_id.
RESOLVED = (
    "family",
    "d_model",
    "n_layers",
    "resolved_config",
    "peak_flops_per_s",
    "peak_bandwidth_bytes_per_s",
)
_LEGACY = (
    "task",
    "device",
    "threads",
    "measure",
    "limits",
    "plugins",
    "model",
    "overrides",
    "level",
    "mode",
    "dtype",
    "batch_size",
    "seq_len",
    "seed",
    "perplexity",  # always in the identity: the perplexity task's settings, null for other tasks
)
HASH_EXCLUDED = ("cell_id", "suite", "out")  # never part of a cell_id (rows carry suite and out)
# Sub-fields added later to a legacy field (hashed as its whole dump): in the id only while not at their default.
_LATER_SUBFIELDS = {"measure": ("processes", "instructions", "instruction_steps"), "limits": ()}


class Cell(BaseModel):
    """One cell: a model at one shape and setting, with how to measure it and its limits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str
    model: str
    overrides: dict[str, Any]
    level: Level
    mode: str  # one of its task's modes
    dtype: DType
    device: str  # resolved: "cpu", "cuda", "cuda:1", ...
    batch_size: int
    seq_len: int
    seed: int
    threads: int | None  # worker CPU threads
    measure: Measure
    limits: Limits
    plugins: list[str]
    compile: Compile = "eager"  # execution mode (execution/); in cell_id only when not eager
    cuda_graph: bool = False  # time CUDA-graph replays; in cell_id only when true
    settings: Any = None  # the task's settings model (None: a task without settings); see the module docstring
    family: str | None = None
    d_model: int | None = None
    n_layers: int | None = None  # a block is one layer
    resolved_config: dict[str, Any] | None = None  # the full model config pre-flight resolved (models/builder.py)
    peak_flops_per_s: float | None = None  # this machine's calibrated matmul peak for dtype (runner.preflight)
    peak_bandwidth_bytes_per_s: float | None = None  # and its calibrated copy bandwidth (the roofline's other side)

    @property
    def task_spec(self) -> Task:
        """The cell's task (gam_bench.tasks)."""
        return get_task(self.task)

    @model_validator(mode="before")
    @classmethod
    def _settings_of_task(cls, data: Any) -> Any:
        """Settings given as a mapping are validated by the task's settings model."""
        if isinstance(data, dict) and isinstance(data.get("settings"), dict) and isinstance(data.get("task"), str):
            model = get_task(data["task"]).settings
            if model is not None:
                return {**data, "settings": model.model_validate(data["settings"])}
        return data

    @model_validator(mode="after")
    def _settings_match_task(self) -> Cell:
        task = self.task_spec
        if self.task in type(self).model_fields:
            raise ValueError(f"task name {self.task!r} is a cell field; rename the task")
        if task.settings is None and self.settings is not None:
            raise ValueError(f"a {self.task} cell has no settings (got {type(self.settings).__name__})")
        if task.settings is not None and not isinstance(self.settings, task.settings):
            raise ValueError(f"a {self.task} cell needs {self.task} settings")
        return self

    @model_validator(mode="after")
    def _mode_matches_task(self) -> Cell:
        task = self.task_spec
        if self.mode not in task.modes:
            raise ValueError(f"a {self.task} cell cannot have mode {self.mode!r} (use {', '.join(task.modes)})")
        task.check_cell(self)  # ValueError: e.g. a decoding mode with decode_tokens < 1
        return self

    def identity(self) -> dict[str, Any]:
        """The fields that make the cell what it is (see the module docstring)."""
        body = self.model_dump(exclude={*RESOLVED, "settings"})
        fields = type(self).model_fields
        for name, later in _LATER_SUBFIELDS.items():
            defaults = type(getattr(self, name)).model_fields
            body[name] = {k: v for k, v in body[name].items() if k not in later or v != defaults[k].default}
        body = {k: v for k, v in body.items() if k in _LEGACY or v != fields[k].default}
        body["perplexity"] = None
        if self.settings is not None:
            body[self.task] = self.settings.model_dump()
        return body

    @property
    def config_json(self) -> str:
        return canonical_json(self.identity())

    @property
    def cell_id(self) -> str:
        return cell_id(self.identity())

    @property
    def group_key(self) -> str:
        """Everything but seq_len (and what the task leaves out of its settings, `Task.budget_identity`:
        a recall cell's num_kv_pairs): cells with equal keys form one budget group."""
        body = {k: v for k, v in self.identity().items() if k != "seq_len"}
        if self.settings is not None:
            body[self.task] = self.task_spec.budget_identity(body[self.task])
        return canonical_json(body)

    @property
    def resolved(self) -> bool:
        return self.family is not None


def canonical_json(body: dict[str, Any]) -> str:
    """A cell's identity as canonical JSON: sorted keys, no cell_id/suite/out."""
    kept = {k: v for k, v in body.items() if k not in HASH_EXCLUDED}
    return json.dumps(kept, sort_keys=True, separators=(",", ":"), default=str)


def cell_id(body: dict[str, Any]) -> str:
    """Stable hash of a cell's identity (sha256 of its canonical JSON, 16 hex digits)."""
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()[:16]


def expand(suite: Suite | SuiteConfig, device: str, threads: int | None = None) -> list[Cell]:
    """All cells of `suite` for a resolved `device` (not yet resolved against the registry).

    Order: model, then the other axes, with seq_len ascending last, so that a failure at a
    length is seen before its longer lengths (budget skipping relies on it).
    `threads` is the resolved worker thread count (the suite's `threads` wins if set).
    """
    config = suite.for_device(device) if hasattr(suite, "for_device") else suite
    fields = config.axes.config_fields()
    names = sorted(fields)
    grid = [config.level, config.mode, config.dtype, config.compile, config.axes.batch_size, config.axes.seed]
    shared = {
        "task": config.task,
        "device": device,
        "threads": config.threads or threads,
        "measure": config.measure,
        "limits": config.limits,
        "plugins": list(config.plugins),
        "cuda_graph": config.cuda_graph,
    }
    task = get_task(config.task)
    cells = []
    for entry in config.models:
        settings = config.settings_for(entry)  # validated once per entry
        for level, mode, dtype, compile, batch, seed, *values in itertools.product(*grid, *(fields[k] for k in names)):
            for seq_len in sorted(config.axes.seq_len):
                for point, own in task.points(settings, seq_len, mode):  # recall: one per (num_kv_pairs, lr)
                    body = {
                        **shared,
                        "settings": point,
                        "model": entry.name,
                        "overrides": {**entry.overrides, **dict(zip(names, values))},
                        "level": level,
                        "mode": mode,
                        "dtype": dtype,
                        "compile": compile,
                        "batch_size": batch,
                        "seq_len": seq_len,
                        "seed": seed,
                    }
                    cells.append(Cell(**{**body, **own}))
    return cells
