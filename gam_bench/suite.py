"""Suite files: the validated YAML description of a sweep (`gam_bench.cell.expand` makes its cells).

A suite file (see suites/README.md for a commented example) holds::

    name: scaling                    # results go to results/<name>/ by default
    description: ...
    task: throughput                 # or perplexity / recall (then a `perplexity:` / `recall:` section), or decode
    plugins: [my_models]             # modules imported (parent and workers) to register models
    models:                          # registry names; a plain string or {name, overrides, perplexity}
      - gam
      - {name: transformer, overrides: {n_heads: 4}}
      - {name: gam, perplexity: {dataset: tinystories}}   # perplexity suites: per-model settings
      - {name: mamba, recall: {lr: 0.01}}                 # recall suites: the same, for `recall:`
    axes:                            # swept: every combination becomes a cell
      seq_len: [256, 512, 1024]
      batch_size: [16]
      seed: [0]
      d_model: [512]                 # any other key is a model config field
    level: block                     # block | lm        (a list sweeps it too)
    mode: forward_backward           # forward | forward_backward | train_step (a list sweeps)
                                     # decode suites: prefill | decode | both (default both)
    decode: {decode_tokens: 64}      # decode suites only (optional): decode steps timed per cell
    dtype: float16                   # float32 | bfloat16 | float16 (autocast) (a list sweeps)
    compile: eager                   # eager | default | reduce-overhead | max-autotune (a list sweeps)
    cuda_graph: false                # true: time CUDA-graph replays (CUDA; forward steps, decode steps)
    calibrate: true                  # false: no matmul-peak calibration; rows' mfu stays empty
    device: auto                     # auto | cpu | cuda | mps | xpu
    threads: null                    # CPU threads of the worker; null = all usable cores
    measure: {warmup: 5, repeats: 20, min_run_time_s: 0, max_repeats: 1000, flops: true}
    limits: {timeout_s: 600, mem_cap_gb: null, mem_cap_fraction: 0.75}
    profiles:                        # per-device grids, merged over the top level
      cpu: {axes: {seq_len: [64, 128]}, measure: {warmup: 1, repeats: 3}}

Per-device grids: `profiles` maps a device type (`cpu`, `cuda`, ...) to a partial suite.
When the run's device resolves to that type, the profile is deep-merged over the top
level (mappings merge key by key, everything else - lists included - is replaced). The
top level alone is the configuration for devices without a profile. Every profile is
validated when the file is loaded, so a typo in the `cuda` profile fails on a CPU box too.

Errors are one line naming the file, the field and the value (`UserError`). Model names
are checked here against the registry (importing `plugins` first); model config fields
need the model classes (torch), so the runner checks them in its pre-flight.

This module does not import torch (the plugins a suite names may).
"""

from __future__ import annotations

import copy
import importlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from gam_bench.analysis.compare_settings import RegressionSettings
from gam_bench.devices import DEVICE_CHOICES, DEVICE_TYPES
from gam_bench.errors import UserError, first_error, location_text
from gam_bench.registry import did_you_mean
from gam_bench.tasks import TASKS
from gam_bench.tasks.decode_settings import DECODE_MODES, DecodeSettings
from gam_bench.tasks.perplexity_settings import PerplexitySettings
from gam_bench.tasks.recall_settings import RecallSettings

Level = Literal["block", "lm"]
TRAINING_MODES = ("forward", "forward_backward", "train_step")
TASK_MODES = {"decode": DECODE_MODES}  # a task's modes (what a cell times); others: TRAINING_MODES
DEFAULT_MODES = {"decode": "both"}  # a task's mode when the suite gives none; others: forward_backward
Mode = Literal[TRAINING_MODES + DECODE_MODES]  # type: ignore[valid-type]
DType = Literal["float32", "bfloat16", "float16"]
Compile = Literal["eager", "default", "reduce-overhead", "max-autotune"]  # torch.compile modes (tasks/execution)
Device = Literal[DEVICE_CHOICES]  # type: ignore[valid-type]
Task = Literal[tuple(TASKS.names())]  # type: ignore[valid-type]

CELL_AXES = ("seq_len", "batch_size", "seed")  # axes that are cell fields, not model config


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelEntry(_Strict):
    """One model of the suite: a registry name, config overrides, and (perplexity suites only)
    settings that replace the suite's `perplexity:` fields for this entry - field by field, so
    `budget: {epochs: 2}` replaces the whole budget. One suite can so train the same model on
    two data sets (the paper's Table 1)."""

    name: str
    overrides: dict[str, Any] = Field(default_factory=dict)
    perplexity: dict[str, Any] = Field(default_factory=dict)
    recall: dict[str, Any] = Field(default_factory=dict)  # recall suites: the same, for `recall:`

    def key(self) -> str:
        """What makes two entries the same run: name, overrides and task settings."""
        return json.dumps([self.name, self.overrides, self.perplexity, self.recall], sort_keys=True, default=str)

    def label(self) -> str:
        extras = [f"{k}={v}" for k, v in sorted({**self.overrides, **self.perplexity, **self.recall}.items())]
        return f"{self.name} ({', '.join(extras)})" if extras else self.name


class Measure(_Strict):
    """How a cell is timed.

    warmup untimed steps, then at least `repeats` timed steps; if `min_run_time_s` > 0, timed
    steps continue until their total reaches it (never more than `max_repeats`). Every timed
    step is stored. `flops`: count FLOPs of one (untimed) step with torch.utils.flop_counter.

    `processes` (pyperf's practice): the sweep makes that many passes over its cells, each pass
    in fresh worker processes, each doing the warmup and timed steps above; a cell's row is
    written after its last pass and keeps every sample (in pass order), each process's median
    (`process_medians_ms`) and reports the median of all samples. So a cell's samples come
    from several processes and from moments a whole pass apart: on a shared machine a small
    cell's time sits at one level for a second or more, so the samples of one burst share
    their level whatever their number (runner/processes.py; docs/methodology/cell.md).
    Each pass costs a worker start (torch import and priming) plus every cell's build and
    warmup again. Default 1: one pass, the cheapest; suites/ci.yaml
    (the gate) uses more. Throughput cells only (pre-flight refuses it elsewhere).
    Added after the other fields: it is part of the cell_id only when not 1 (cell.py).

    `instructions` (CPU throughput cells, eager): also count the instructions of
    `instruction_steps` steps (after one warm-up step) in one more worker started under
    valgrind's callgrind, counting only around each step (measure/instructions.py,
    runner/counting.py): the row's `instructions` (median) and `instructions_samples`, a
    deterministic cost the gate judges with a tight threshold and no significance test. Where
    valgrind is missing or too old the row records why (`instructions_reason`). Both are in the
    cell_id only when not at their default.
    """

    warmup: int = Field(5, ge=0)
    repeats: int = Field(20, ge=1)
    min_run_time_s: float = Field(0.0, ge=0)
    max_repeats: int = Field(1000, ge=1)
    flops: bool = True
    processes: int = Field(1, ge=1)
    instructions: bool = False
    instruction_steps: int = Field(3, ge=1, le=100)

    @model_validator(mode="after")
    def _repeats_within_max(self) -> Measure:
        if self.max_repeats < self.repeats:
            raise ValueError(f"max_repeats ({self.max_repeats}) is below repeats ({self.repeats})")
        return self


class Limits(_Strict):
    """Per-cell limits: a wall-clock timeout (whole cell: build, warmup, timing) and a memory cap.

    The memory cap is `mem_cap_gb` GiB if given, else `mem_cap_fraction` of the machine's RAM
    (CPU: the worker's address-space limit above its idle size; GPU: the allocator's share).
    """

    timeout_s: float = Field(600.0, gt=0)
    mem_cap_gb: float | None = Field(None, gt=0)
    mem_cap_fraction: float = Field(0.75, gt=0, le=1)


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
    return TASK_MODES.get(task or "", TRAINING_MODES)


def _mode_of_task(value: str, info: ValidationInfo) -> str:
    """A suite's mode must be one of its task's: a throughput suite cannot say `decode`."""
    allowed = modes_of(info.data.get("task"))
    if value not in allowed:
        expected = ", ".join(repr(m) for m in allowed[:-1]) + f" or {allowed[-1]!r}"
        raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
    return value


SuiteMode = Annotated[str, AfterValidator(_mode_of_task)]


class SuiteConfig(_Strict):
    """The validated body of a suite, for one device (top level merged with its profile)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    task: Task = "throughput"
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
    perplexity: PerplexitySettings | None = Field(None, validate_default=True)
    decode: DecodeSettings | None = Field(None, validate_default=True)  # task decode (defaults if not given)
    recall: RecallSettings | None = Field(None, validate_default=True)  # task: recall (tasks/recall_settings)
    regression: RegressionSettings | None = None  # thresholds of `gam-bench check` (not part of cells)

    @model_validator(mode="before")
    @classmethod
    def _task_default_mode(cls, data: Any) -> Any:
        if isinstance(data, dict) and "mode" not in data and data.get("task") in DEFAULT_MODES:
            return {**data, "mode": DEFAULT_MODES[data["task"]]}
        return data

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

    @field_validator("perplexity", "recall")
    @classmethod
    def _section_matches_task(cls, value: Any, info: ValidationInfo) -> Any:
        """A task with required settings (perplexity, recall) has its section, and only it."""
        name, task = info.field_name, info.data.get("task")
        if task == name and value is None:
            raise ValueError(f"task {name!r} needs a '{name}:' section")
        if task != name and value is not None:
            raise ValueError(f"a '{name}:' section needs 'task: {name}'")
        return value

    @field_validator("decode")
    @classmethod
    def _decode_matches_task(cls, value: DecodeSettings | None, info: ValidationInfo) -> DecodeSettings | None:
        if info.data.get("task") != "decode":
            if value is not None:
                raise ValueError("a 'decode:' section needs 'task: decode'")
            return None
        value = value or DecodeSettings()
        for mode in info.data.get("mode") or []:
            value.for_mode(mode)  # ValueError: decode_tokens < 1 for a mode that decodes
        return value

    def perplexity_for(self, entry: ModelEntry) -> PerplexitySettings | None:
        """The suite's perplexity settings with the entry's own fields in their place."""
        if self.perplexity is None:
            return None
        if not entry.perplexity:
            return self.perplexity
        return PerplexitySettings.model_validate({**self.perplexity.model_dump(), **entry.perplexity})

    def recall_for(self, entry: ModelEntry) -> RecallSettings | None:
        """The suite's recall settings with the entry's own fields in their place."""
        if self.recall is None:
            return None
        if not entry.recall:
            return self.recall
        return RecallSettings.model_validate({**self.recall.model_dump(), **entry.recall})


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


# ---------------------------------------------------------------- loading


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file; raise UserError naming file, field and value."""
    path = Path(path)
    raw = _read_yaml(path)
    return suite_from_dict(raw, source=path)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read suite file ({exc.strerror or exc})") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte = data[exc.start]
        raise UserError(
            f"{path}: not a UTF-8 text file (byte 0x{byte:02x} at offset {exc.start} cannot be decoded)"
        ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}: invalid YAML{where}: {problem}") from exc
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a suite file must be a mapping of fields, got {type(raw).__name__}")
    return raw


def suite_from_dict(raw: dict[str, Any], source: str | Path = "<suite>") -> Suite:
    """Validate a suite given as a dict (what load_suite reads from YAML)."""
    raw = copy.deepcopy(raw)
    profiles_raw = raw.pop("profiles", None) or {}
    if not isinstance(profiles_raw, dict):
        raise UserError(f"{source}: profiles: must be a mapping of device type to settings, got {profiles_raw!r}")
    base = _validate(raw, source, prefix="")
    profiles = {}
    for device, override in profiles_raw.items():
        profiles[device] = _validate_profile(raw, device, override, source)
    for config in (base, *profiles.values()):
        _import_plugins(config.plugins, source)
    _check_model_names(raw, base, source, prefix="")
    for device, config in profiles.items():
        _check_model_names(profiles_raw[device], config, source, prefix=f"profiles.{device}.")
    return Suite(path=Path(source) if source != "<suite>" else None, base=base, profiles=profiles)


def _validate_profile(raw: dict[str, Any], device: str, override: Any, source: Any) -> SuiteConfig:
    where = f"profiles.{device}"
    if device not in DEVICE_TYPES:
        raise UserError(f"{source}: {where}: unknown device type {device!r} (use {', '.join(DEVICE_TYPES)})")
    if not isinstance(override, dict):
        raise UserError(f"{source}: {where}: must be a mapping of settings, got {override!r}")
    for key in ("name", "profiles"):
        if key in override:
            raise UserError(f"{source}: {where}.{key}: cannot be set in a profile")
    return _validate(deep_merge(raw, override), source, prefix=f"{where}.", override=override)


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` merged into a copy of `base`: mappings merge recursively, other values replace."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _validate(raw: dict[str, Any], source: Any, prefix: str, override: dict | None = None) -> SuiteConfig:
    try:
        config = SuiteConfig.model_validate(raw)
    except ValidationError as exc:
        _raise_located(exc, [], raw, source, prefix, override)
    for i, entry in enumerate(config.models):
        if entry.perplexity and config.perplexity is None:
            where = _profile_prefix(prefix, override, ["models", i, "perplexity"])
            raise UserError(
                f"{source}: {where}models[{i}].perplexity: per-model perplexity settings need 'task: perplexity'"
            )
        try:
            config.perplexity_for(entry)
        except ValidationError as exc:
            _raise_located(exc, ["models", i, "perplexity"], raw, source, prefix, override)
        if entry.recall and config.recall is None:
            where = _profile_prefix(prefix, override, ["models", i, "recall"])
            raise UserError(f"{source}: {where}models[{i}].recall: per-model recall settings need 'task: recall'")
        try:
            config.recall_for(entry)
        except ValidationError as exc:
            _raise_located(exc, ["models", i, "recall"], raw, source, prefix, override)
    if config.task == "recall":
        _check_recall(config, raw, source, prefix, override)
    return config


def _check_recall(config: SuiteConfig, raw: dict[str, Any], source: Any, prefix: str, override: dict | None) -> None:
    """A recall suite trains whole LMs, takes batch size and seed from `recall:` (not from
    axes), trains for less than the cell timeout, and every (entry, seq_len) must be a
    possible MQAR setting (`mqar.check_setting`)."""
    if config.level != ["lm"]:
        where = _profile_prefix(prefix, override, ["level"])
        raise UserError(f"{source}: {where}level: the recall task trains language models: use level: lm")
    for axis in ("batch_size", "seed"):
        if axis in raw["axes"]:
            where = _profile_prefix(prefix, override, ["axes", axis])
            raise UserError(f"{source}: {where}axes.{axis}: a recall suite sets it in its section: recall.{axis}")
    for i in range(len(config.models)):
        _check_recall_entry(config, i, source, prefix, override)


def _check_recall_entry(config: SuiteConfig, i: int, source: Any, prefix: str, override: dict | None) -> None:
    """Entry i's recall settings: a seconds budget below the timeout, a possible MQAR setting at every length."""
    from gam_bench.tasks import mqar

    entry = config.models[i]
    settings = config.recall_for(entry)

    def where(field: str) -> str:  # the entry's own field if it sets it, else the suite's
        loc = ["models", i, "recall", field] if field in entry.recall else ["recall", field]
        return _profile_prefix(prefix, override, loc) + location_text(loc)

    seconds, timeout = settings.budget.seconds, config.limits.timeout_s
    if seconds is not None and seconds >= timeout:
        raise UserError(
            f"{source}: {where('budget')}: seconds={seconds:g} leaves no time in limits.timeout_s={timeout:g}"
        )
    for seq_len in sorted(config.axes.seq_len):
        try:
            for k in settings.kv_pairs_for(seq_len):
                mqar.check_setting(k, seq_len, settings.vocab_size, settings.power_a)
        except UserError as exc:
            field = "vocab_size" if str(exc).startswith("MQAR: vocab_size") else "num_kv_pairs"
            raise UserError(f"{source}: {where(field)}: {str(exc).removeprefix('recall.')}") from None


def _raise_located(
    exc: ValidationError, at: list[Any], raw: dict[str, Any], source: Any, prefix: str, override: dict | None
) -> None:
    """Re-raise pydantic's first error as a UserError naming file, field and value."""
    from gam_bench.suite_hints import error_hint

    loc, message = first_error(exc, at)
    where = location_text(loc) or "<top level>"
    message += error_hint(exc, SuiteConfig)
    raise UserError(f"{source}: {_profile_prefix(prefix, override, loc)}{where}: {message}") from None


def _profile_prefix(prefix: str, override: dict | None, loc: list[Any]) -> str:
    """`prefix` if the value at `loc` comes from the profile; "" if it comes from the top level."""
    return "" if override is not None and not _path_in(override, loc) else prefix


def _path_in(tree: Any, loc: list[Any]) -> bool:
    for part in loc:
        if isinstance(tree, dict) and part in tree:
            tree = tree[part]
        elif isinstance(tree, list) and isinstance(part, int) and part < len(tree):
            tree = tree[part]
        else:
            return False
    return True


def _import_plugins(plugins: list[str], source: Any) -> None:
    suite_dir = str(Path(source).resolve().parent) if source != "<suite>" else None
    for i, module in enumerate(plugins):
        try:
            import_plugin(module, suite_dir)
        except Exception as exc:
            raise UserError(f"{source}: plugins[{i}]: cannot import {module!r}: {exc}") from None


def import_plugin(module: str, search_dir: str | None = None) -> None:
    """Import a plugin module; `search_dir` (the suite file's folder) is tried last on sys.path."""
    if search_dir and search_dir not in sys.path:
        sys.path.append(search_dir)
    importlib.import_module(module)


def _check_model_names(raw: dict[str, Any], config: SuiteConfig, source: Any, prefix: str) -> None:
    if "models" not in raw:
        return
    from gam_bench.models.registry import available

    names = available()
    for i, entry in enumerate(config.models):
        if entry.name not in names:
            hint = did_you_mean(entry.name, names)
            raise UserError(f"{source}: {prefix}models[{i}].name: unknown model {entry.name!r}{hint}")
