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
are generic cell fields (tasks/execution.py); a task that honours them is listed in
`tasks.execution.EXECUTION_TASKS`, and pre-flight refuses them for any other task.

Task settings: a task with settings of its own has a field named after it (`perplexity`,
`recall`), set for cells of that task and None for every other. A recall cell holds one
point of its suite's sweep (one num_kv_pairs, one lr), and takes its batch size and seed from
those settings. Adding a task's settings is: a
pydantic model (no torch) with defaults, a field `<task>: Settings | None = None` here, and
its section in `suite.SuiteConfig`; register the task in `gam_bench.tasks.TASKS`.

This module does not import torch.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, model_validator

from gam_bench.suite import Compile, DType, Level, Limits, Measure, Mode, Suite, modes_of
from gam_bench.tasks.decode_settings import DecodeSettings
from gam_bench.tasks.perplexity_settings import PerplexitySettings
from gam_bench.tasks.recall_settings import RecallSettings

if TYPE_CHECKING:
    from gam_bench.suite import SuiteConfig

SETTINGS_FIELDS = ("perplexity", "decode", "recall")  # task name = its settings field (see the module docstring)
# Filled in by pre-flight; never part of cell_id.
RESOLVED = ("family", "d_model", "n_layers", "peak_flops_per_s", "peak_bandwidth_bytes_per_s")
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
    "perplexity",
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
    mode: Mode
    dtype: DType
    device: str  # resolved: "cpu", "cuda", "cuda:1", ...
    batch_size: int
    seq_len: int
    seed: int
    threads: int | None  # worker CPU threads
    measure: Measure
    limits: Limits
    plugins: list[str]
    perplexity: PerplexitySettings | None = None
    decode: DecodeSettings | None = None  # task decode; its mode (prefill | decode | both) is `mode`
    compile: Compile = "eager"  # execution mode (tasks/execution); in cell_id only when not eager
    cuda_graph: bool = False  # time CUDA-graph replays; in cell_id only when true
    recall: RecallSettings | None = None  # one point of the sweep: scalar num_kv_pairs and lr
    family: str | None = None
    d_model: int | None = None
    n_layers: int | None = None  # a block is one layer
    peak_flops_per_s: float | None = None  # this machine's calibrated matmul peak for dtype (runner.preflight)
    peak_bandwidth_bytes_per_s: float | None = None  # and its calibrated copy bandwidth (the roofline's other side)

    @model_validator(mode="after")
    def _settings_match_task(self) -> Cell:
        for name in SETTINGS_FIELDS:
            given = getattr(self, name) is not None
            if given and self.task != name:
                raise ValueError(f"a {self.task} cell has {name} settings")
            if not given and self.task == name:
                raise ValueError(f"a {name} cell needs {name} settings")
        return self

    @model_validator(mode="after")
    def _mode_matches_task(self) -> Cell:
        if self.mode not in modes_of(self.task):
            allowed = ", ".join(modes_of(self.task))
            raise ValueError(f"a {self.task} cell cannot have mode {self.mode!r} (use {allowed})")
        if self.decode is not None:
            self.decode.for_mode(self.mode)  # ValueError: a decoding mode with decode_tokens < 1
        return self

    def identity(self) -> dict[str, Any]:
        """The fields that make the cell what it is (see the module docstring)."""
        body = self.model_dump(exclude=set(RESOLVED))
        fields = type(self).model_fields
        for name, later in _LATER_SUBFIELDS.items():
            defaults = type(getattr(self, name)).model_fields
            body[name] = {k: v for k, v in body[name].items() if k not in later or v != defaults[k].default}
        return {k: v for k, v in body.items() if k in _LEGACY or v != fields[k].default}

    @property
    def config_json(self) -> str:
        return canonical_json(self.identity())

    @property
    def cell_id(self) -> str:
        return cell_id(self.identity())

    @property
    def group_key(self) -> str:
        """Everything but seq_len (and a recall cell's num_kv_pairs, which costs nothing per step
        and is often tied to seq_len): cells with equal keys form one budget group."""
        body = {k: v for k, v in self.identity().items() if k != "seq_len"}
        if self.recall is not None:
            body["recall"] = {k: v for k, v in body["recall"].items() if k != "num_kv_pairs"}
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
    config = suite.for_device(device) if isinstance(suite, Suite) else suite
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
    cells = []
    for entry in config.models:
        settings = {"perplexity": config.perplexity_for(entry)}  # validated once per entry
        recall = config.recall_for(entry)  # one cell per (num_kv_pairs, lr); it sets batch_size and seed
        for level, mode, dtype, compile, batch, seed, *values in itertools.product(*grid, *(fields[k] for k in names)):
            for seq_len in sorted(config.axes.seq_len):
                for point in recall.points(seq_len) if recall is not None else [None]:
                    cell = Cell(
                        **shared,
                        **settings,
                        decode=config.decode.for_mode(mode) if config.decode else None,
                        recall=point,
                        model=entry.name,
                        overrides={**entry.overrides, **dict(zip(names, values))},
                        level=level,
                        mode=mode,
                        dtype=dtype,
                        compile=compile,
                        batch_size=batch if point is None else point.batch_size,
                        seq_len=seq_len,
                        seed=seed if point is None else point.seed,
                    )
                    cells.append(cell)
    return cells
