"""The suite files' JSON Schema, generated from the pydantic models that validate them.

`gam-bench schema` writes it; `suites/suite.schema.json` is its committed copy (a test keeps
it current), which every suite names on a `# yaml-language-server: $schema=...` line so that
editors validate and complete suite files.

pydantic's own schema describes the *validated* shape. A suite file may say more briefly what
the validators expand, so the schema is widened where they do:
- `level`, `mode`, `dtype`, `compile`: one value or a list (a list sweeps it);
- `models`: a registry name or a mapping {name, overrides, and a task's own fields};
- each task with settings adds its section (`perplexity:`, `decode:`, `recall:`, a plugin's);
- `axes`: every axis one value or a list;
- `profiles`: per device type, a partial suite merged over the top level (no `name`).
Checks that need more than the file (model names in the registry, model config fields,
whether a recall setting is possible) stay in `gam-bench run`'s loading and pre-flight.

No torch here.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from gam_bench.devices import DEVICE_TYPES
from gam_bench.tasks import all_tasks

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SWEEPABLE = ("level", "mode", "dtype", "compile")

# What each top-level field means (pydantic has the nested sections' docstrings; these
# fields carry none of their own).
FIELD_HELP = {
    "name": "Results go to results/<name>/ and the report to reports/<name>/ by default.",
    "description": "One line saying what the suite measures.",
    "task": "What a cell measures: throughput (default), perplexity, decode or recall.",
    "plugins": "Modules imported first (parent and workers) to register models; looked up on sys.path, "
    "then in the suite file's folder.",
    "models": "Registry names (gam-bench models), plain or as {name, overrides, perplexity, recall}.",
    "axes": "Swept values: every combination is a cell; a scalar is a one-value list. seq_len is required; "
    "batch_size (default 1) and seed (default 0) are cell fields; any other key is a model config field.",
    "level": "block (one block, (B, T, D)) or lm (the whole language model); a list sweeps it.",
    "mode": "forward, forward_backward or train_step; decode suites: prefill, decode or both; a list sweeps it.",
    "dtype": "float32, bfloat16 or float16 (autocast); a list sweeps it.",
    "compile": "eager or a torch.compile mode (default, reduce-overhead, max-autotune); a list sweeps it.",
    "cuda_graph": "CUDA only: capture the step into a CUDA graph and time its replays.",
    "calibrate": "Measure this machine's matmul peak once (cached) for the rows' mfu; false leaves mfu empty.",
    "device": "auto (the accelerator if any), cpu, cuda, mps or xpu; --device overrides it.",
    "threads": "torch CPU threads in the worker; null: all usable cores.",
    "measure": "How a cell is timed.",
    "limits": "Per-cell timeout and memory cap.",
    "perplexity": "task perplexity: data, tokenizer, training and evaluation settings.",
    "decode": "task decode: decode steps timed per cell.",
    "recall": "task recall: MQAR data, budget and optimiser settings.",
    "regression": "Thresholds of gam-bench compare / check for this suite (not part of the cells).",
    "profiles": "Per device type, settings deep-merged over the top level when the run's device has that type "
    "(mappings merge key by key; lists and other values replace).",
}


def suite_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a suite file."""
    from gam_bench.suite import SuiteConfig

    schema = SuiteConfig.model_json_schema()
    defs = schema.pop("$defs", {})
    schema["properties"] = props = _with_task_sections(schema["properties"], defs)
    all_modes = sorted({mode for task in all_tasks() for mode in task.modes})
    props["task"]["enum"] = [task.name for task in all_tasks()]
    props["mode"]["items"] = {"enum": all_modes, "type": "string"}
    for name in SWEEPABLE:
        props[name] = _one_or_list(props[name])
    props["models"]["items"] = {
        "anyOf": [{"type": "string", "description": "a registry name"}, {"$ref": "#/$defs/ModelEntry"}]
    }
    defs["Axes"] = _axes(defs["Axes"])
    # seq_len is searched, not listed, in a suite with `search:` (gam_bench.search): required otherwise
    schema["if"] = {"not": {"required": ["search"]}}
    schema["then"] = {"properties": {"axes": {"required": ["seq_len"]}}}
    for name, text in FIELD_HELP.items():
        if name in props:
            props[name]["description"] = text
    defs["Profile"] = _profile(schema)
    props["profiles"] = {
        "type": "object",
        "description": FIELD_HELP["profiles"],
        "propertyNames": {"enum": list(DEVICE_TYPES)},
        "additionalProperties": {"$ref": "#/$defs/Profile"},
    }
    return {
        "$schema": SCHEMA_DIALECT,
        **schema,
        "title": "gam-bench suite",
        "description": "A gam-bench suite file (YAML): the models, axes and settings of a sweep. "
        "Written by `gam-bench schema` from the models that validate suites.",
        "$defs": dict(sorted(defs.items())),
    }


def _with_task_sections(props: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The suite's properties with each task's section (its settings model, validated through the
    task: gam_bench.suite.loading) before `regression`, and a models entry's own task fields."""
    sections = {}
    entry = defs["ModelEntry"]["properties"]
    entry.pop("task_settings", None)
    for task in all_tasks():
        if task.settings is None:
            continue
        sub = task.settings.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(sub.pop("$defs", {}))
        defs[task.settings.__name__] = sub
        ref = {"$ref": f"#/$defs/{task.settings.__name__}"}
        sections[task.name] = {"anyOf": [ref, {"type": "null"}], "default": None}
        entry[task.name] = {"additionalProperties": True, "title": task.name.title(), "type": "object"}
    out = {k: v for k, v in props.items() if k != "regression"}
    return {**out, **sections, "regression": props["regression"]}


def schema_text() -> str:
    """The schema as the committed file holds it: sorted, indented JSON and a final newline."""
    return json.dumps(suite_json_schema(), indent=2) + "\n"


def _one_or_list(prop: dict[str, Any]) -> dict[str, Any]:
    """A list field that also takes one of its items."""
    listed = {k: v for k, v in prop.items() if k not in ("title", "default", "description")}
    out = {"anyOf": [prop["items"], listed]}
    for key in ("title", "default"):
        if key in prop:
            out[key] = prop[key]
    return out


def _axes(axes: dict[str, Any]) -> dict[str, Any]:
    axes = copy.deepcopy(axes)
    for name, prop in axes["properties"].items():
        axes["properties"][name] = _one_or_list(prop)
    axes["additionalProperties"] = {"description": "a model config field: one value or a list of values"}
    axes["required"] = [name for name in axes.get("required", []) if name != "seq_len"]  # see suite_json_schema
    if not axes["required"]:
        del axes["required"]
    return axes


def _profile(suite: dict[str, Any]) -> dict[str, Any]:
    """A partial suite: any top-level field but name (and profiles), none required."""
    props = {k: v for k, v in copy.deepcopy(suite["properties"]).items() if k not in ("name", "profiles")}
    return {
        "type": "object",
        "title": "Profile",
        "description": "Settings for one device type, deep-merged over the top level.",
        "properties": props,
        "additionalProperties": False,
    }
