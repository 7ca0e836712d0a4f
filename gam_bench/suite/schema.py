"""The body of a suite file as pydantic models: `SuiteConfig` (one device's configuration),
`ModelEntry`, `Axes` and `Suite` (the top level plus per-device profiles).

A task's own section (`perplexity:`, `recall:`, `decode:`, a plugin task's) is not a field
here: the loader (gam_bench.suite.loading) validates it through its task
(`Task.suite_settings`) and keeps the result as `SuiteConfig.settings`. A models entry's
own task fields (`{name: gam, perplexity: {...}}`) are kept in `ModelEntry.task_settings`.

No torch here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from gam_bench.analysis.compare_settings import RegressionSettings
from gam_bench.registry import did_you_mean
from gam_bench.search.settings import SearchSettings
from gam_bench.settings import Compile, Device, DType, Level, Limits, Measure, Strict

CELL_AXES = ("seq_len", "batch_size", "seed")  # axes that are cell fields, not model config


def task_names() -> list[str]:
    from gam_bench.tasks import available

    return available()


class ModelEntry(Strict):
    """One model of the suite: a registry name, config overrides, and per task its own settings
    (`{name: gam, perplexity: {dataset: tinystories}}`), which replace the suite's section's
    fields for this entry - field by field, so `budget: {epochs: 2}` replaces the whole budget.
    One suite can so train the same model on two data sets (the paper's Table 1)."""

    name: str
    overrides: dict[str, Any] = Field(default_factory=dict)
    task_settings: dict[str, dict[str, Any]] = Field(default_factory=dict)  # task name -> its own fields

    @model_validator(mode="before")
    @classmethod
    def _task_fields(cls, data: Any) -> Any:
        """A key named after a task (`perplexity: {...}`) is that task's settings for this entry."""
        if not isinstance(data, dict):
            return data
        names = set(task_names())
        own = {k: v for k, v in data.items() if k in names}
        if not own:
            return data
        return {**{k: v for k, v in data.items() if k not in names}, "task_settings": own}

    def key(self) -> str:
        """What makes two entries the same run: name, overrides and task settings."""
        return json.dumps([self.name, self.overrides, self.task_settings], sort_keys=True, default=str)

    def label(self) -> str:
        fields = dict(self.overrides)
        for own in self.task_settings.values():
            fields.update(own)
        extras = [f"{k}={v}" for k, v in sorted(fields.items())]
        return f"{self.name} ({', '.join(extras)})" if extras else self.name


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


class Axes(BaseModel):
    """Swept values. A scalar means a one-value list. Extra keys are model config fields."""

    model_config = ConfigDict(extra="allow")

    seq_len: list[PositiveInt] = Field(min_length=1)
    batch_size: list[PositiveInt] = Field(default_factory=lambda: [1], min_length=1)
    seed: list[NonNegativeInt] = Field(default_factory=lambda: [0], min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _scalars_as_lists(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: _as_list(value) for key, value in data.items()}
        return data

    @model_validator(mode="after")
    def _no_repeats(self) -> Axes:
        for key, values in self.values().items():
            if not values:
                raise ValueError(f"axis {key!r} has no values")
            if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
                raise ValueError(f"axis {key!r} repeats a value: {values!r}")
        return self

    def values(self) -> dict[str, list[Any]]:
        """All axes, name -> list of values."""
        return {**{k: getattr(self, k) for k in CELL_AXES}, **(self.model_extra or {})}

    def config_fields(self) -> dict[str, list[Any]]:
        """The axes that are model config fields (not seq_len, batch_size, seed)."""
        return dict(self.model_extra or {})


def _listify(value: Any) -> Any:
    return _as_list(value) if value is not None else value


def modes_of(task: str | None) -> tuple[str, ...]:
    """The modes a task's cells can have (decode: prefill | decode | both)."""
    from gam_bench.tasks import get_task

    return get_task(task or "throughput").modes


def _known_task(value: str) -> str:
    names = task_names()
    if value not in names:
        raise PydanticCustomError("task_error", "not a registered task{hint}", {"hint": did_you_mean(value, names)})
    return value


def _mode_of_task(value: str, info: ValidationInfo) -> str:
    """A suite's mode must be one of its task's: a throughput suite cannot say `decode`."""
    task = info.data.get("task")
    if task is None:  # the task itself was refused; that is the error to report
        return value
    allowed = modes_of(task)
    if value not in allowed:
        expected = ", ".join(repr(m) for m in allowed[:-1]) + f" or {allowed[-1]!r}"
        raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
    return value


TaskName = Annotated[str, AfterValidator(_known_task)]
SuiteMode = Annotated[str, AfterValidator(_mode_of_task)]


class SuiteConfig(Strict):
    """The validated body of a suite, for one device (top level merged with its profile)."""

    # `settings` (below): the task's validated section, set by the loader; `settings_for(entry)`
    # gives a models entry's own.

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    task: TaskName = "throughput"
    plugins: list[str] = Field(default_factory=list)
    models: list[ModelEntry] = Field(min_length=1)
    axes: Axes
    level: list[Level] = Field(["block"], min_length=1)
    mode: list[SuiteMode] = Field(["forward_backward"], min_length=1)
    dtype: list[DType] = Field(["float32"], min_length=1)
    compile: list[Compile] = Field(["eager"], min_length=1)  # execution mode (a list sweeps)
    cuda_graph: bool = False  # capture the step into a CUDA graph and time its replays (CUDA only)
    calibrate: bool = True  # measure this machine's matmul peak once (cached) for the rows' mfu
    device: Device = "auto"
    threads: int | None = Field(None, ge=1)
    measure: Measure = Field(default_factory=Measure)
    limits: Limits = Field(default_factory=Limits)
    regression: RegressionSettings | None = None  # thresholds of `gam-bench check` (not part of cells)
    search: SearchSettings | None = None  # search the longest seq_len that fits instead of a grid (gam_bench.search)
    _settings: Any = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _task_default_mode(cls, data: Any) -> Any:
        """A suite without `mode` gets its task's default mode (decode: both)."""
        if isinstance(data, dict) and "mode" not in data and data.get("task", "throughput") in task_names():
            from gam_bench.tasks import get_task

            return {**data, "mode": get_task(data.get("task", "throughput")).default_mode}
        return data

    @model_validator(mode="before")
    @classmethod
    def _searched_length(cls, data: Any) -> Any:
        """A suite with `search:` has no seq_len axis: its cells start at `search.start` (the
        runner searches on from there; the loader refuses an `axes.seq_len` given with it)."""
        if not (isinstance(data, dict) and isinstance(data.get("search"), dict) and isinstance(data.get("axes"), dict)):
            return data
        if "seq_len" in data["axes"]:
            return data
        start = data["search"].get("start", SearchSettings.model_fields["start"].default)
        first = start if isinstance(start, int) and not isinstance(start, bool) and start > 0 else 1
        return {**data, "axes": {**data["axes"], "seq_len": [first]}}

    @field_validator("level", "mode", "dtype", "compile", mode="before")
    @classmethod
    def _sweepable(cls, value: Any) -> Any:
        return _listify(value)

    @field_validator("models", mode="before")
    @classmethod
    def _names_as_entries(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("models")
    @classmethod
    def _distinct_models(cls, models: list[ModelEntry]) -> list[ModelEntry]:
        seen: set[str] = set()
        for entry in models:
            if entry.key() in seen:
                raise ValueError(f"model {entry.label()!r} is listed twice")
            seen.add(entry.key())
        return models

    @property
    def settings(self) -> Any:
        """The task's validated section (None: the task has no settings)."""
        return self._settings

    def with_settings(self, settings: Any) -> SuiteConfig:
        config = self.model_copy()
        config._settings = settings
        return config

    def settings_for(self, entry: ModelEntry) -> Any:
        """The suite's task settings with the entry's own fields in their place."""
        from gam_bench.tasks import get_task

        return get_task(self.task).entry_settings(self.settings, entry.task_settings.get(self.task, {}))


class Suite(BaseModel):
    """A loaded suite file: its top-level config, per-device profiles and where it came from."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    path: Path | None = None
    base: SuiteConfig
    profiles: dict[str, SuiteConfig] = Field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.base.name

    @property
    def source(self) -> str:
        return str(self.path) if self.path else "<suite>"

    def for_device(self, device: str) -> SuiteConfig:
        """The configuration for a resolved device such as "cpu", "cuda" or "cuda:1"."""
        return self.profiles.get(device.split(":")[0], self.base)
