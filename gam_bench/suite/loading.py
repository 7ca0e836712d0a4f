"""Suite files: the validated YAML description of a sweep (`gam_bench.cell.expand` makes its cells).

A suite file (see suites/README.md for a commented example) holds::

    name: scaling                    # results go to results/<name>/ by default
    description: ...
    task: throughput                 # or perplexity / recall (then a `perplexity:` / `recall:` section), decode,
                                     # or a task a plugin registers (gam_bench.tasks)
    plugins: [my_models]             # modules imported (parent and workers) to register models and tasks
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
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from gam_bench.devices import DEVICE_TYPES
from gam_bench.errors import UserError, first_error, location_text
from gam_bench.registry import did_you_mean
from gam_bench.search.settings import check_search
from gam_bench.suite.hints import error_hint
from gam_bench.suite.schema import Suite, SuiteConfig, task_names
from gam_bench.tasks import get_task


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
    _import_plugins(raw.get("plugins"), source, "")  # first: they may register the suite's task
    for device, override in profiles_raw.items():
        if isinstance(override, dict):
            _import_plugins(override.get("plugins"), source, f"profiles.{device}.")
    base = _validate(raw, source, prefix="")
    profiles = {}
    for device, override in profiles_raw.items():
        profiles[device] = _validate_profile(raw, device, override, source)
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
    """One device's configuration: the generic fields, then the task's section through its task."""
    names = set(task_names())
    sections = {key: value for key, value in raw.items() if key in names}
    try:
        config = SuiteConfig.model_validate({k: v for k, v in raw.items() if k not in sections})
    except ValidationError as exc:
        _raise_located(exc, [], raw, source, prefix, override)

    def where(loc: list[Any]) -> str:
        return f"{source}: {_profile_prefix(prefix, override, loc)}{location_text(loc)}"

    task = get_task(config.task)
    for name in sections:
        if name != task.name or task.settings is None:
            raise UserError(f"{where([name])}: a '{name}:' section needs 'task: {name}'")
    if task.settings is not None and task.section_required and task.name not in sections:
        raise UserError(f"{where([task.name])}: task {task.name!r} needs a '{task.name}:' section")
    try:
        config = config.with_settings(task.suite_settings(sections.get(task.name)))
    except ValidationError as exc:
        _raise_located(exc, [task.name], raw, source, prefix, override, task.settings)
    for i, entry in enumerate(config.models):
        _check_entry(config, i, entry, raw, source, prefix, override)
    task.check_suite(config, raw, where)
    if config.search is not None:
        check_search(config, raw, where)
    return config


def _check_entry(
    config: SuiteConfig, i: int, entry: Any, raw: dict[str, Any], source: Any, prefix: str, override: dict | None
) -> None:
    """A models entry's own task fields: only for the suite's task, and valid merged over its section."""
    for name in entry.task_settings:
        if name != config.task:
            where = _profile_prefix(prefix, override, ["models", i, name])
            raise UserError(f"{source}: {where}models[{i}].{name}: per-model {name} settings need 'task: {name}'")
    try:
        config.settings_for(entry)
    except ValidationError as exc:
        root = get_task(config.task).settings or SuiteConfig
        _raise_located(exc, ["models", i, config.task], raw, source, prefix, override, root)


def _raise_located(
    exc: ValidationError,
    at: list[Any],
    raw: dict[str, Any],
    source: Any,
    prefix: str,
    override: dict | None,
    root: type[BaseModel] = SuiteConfig,
) -> None:
    """Re-raise pydantic's first error as a UserError naming file, field and value (with a
    did-you-mean hint among the fields of `root`, the model validated: the suite's or a task's settings)."""
    loc, message = first_error(exc, at)
    where = location_text(loc) or "<top level>"
    message += error_hint(exc, root)
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


def _import_plugins(plugins: Any, source: Any, prefix: str) -> None:
    """Import a suite's plugin modules (a value that is not a list of names is left to validation)."""
    if not isinstance(plugins, list) or not all(isinstance(module, str) for module in plugins):
        return
    suite_dir = str(Path(source).resolve().parent) if source != "<suite>" else None
    for i, module in enumerate(plugins):
        try:
            import_plugin(module, suite_dir)
        except Exception as exc:
            raise UserError(f"{source}: {prefix}plugins[{i}]: cannot import {module!r}: {exc}") from None


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
