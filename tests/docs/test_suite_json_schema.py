"""`gam-bench schema`: the suite files' JSON Schema. The committed copy is current, every suite
names it on a yaml-language-server line and validates against it, and it catches mistakes."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from gam_bench.cli.main import main
from gam_bench.suite.json_schema import schema_text, suite_json_schema

REPO = Path(__file__).resolve().parents[2]
SUITES = sorted((REPO / "suites").glob("*.yaml")) + [REPO / "examples" / "plugin" / "suite.yaml"]
LINE = "# yaml-language-server: $schema="


def _validator():
    schema = suite_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _as_json(path: Path):
    return json.loads(json.dumps(yaml.safe_load(path.read_text())))  # YAML int keys -> JSON strings


def test_committed_schema_is_current():
    current = (REPO / "suites" / "suite.schema.json").read_text() == schema_text()
    assert current, "suites/suite.schema.json is stale: run gam-bench schema -o suites/suite.schema.json"


@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.name)
def test_suite_names_the_schema_and_validates(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith(LINE)
    assert (path.parent / first.removeprefix(LINE)).resolve() == REPO / "suites" / "suite.schema.json"
    assert list(_validator().iter_errors(_as_json(path))) == []


@pytest.mark.parametrize(
    "suite, path",
    [
        ({"name": "x", "models": ["gam"], "axes": {"seq_len": 8}, "measure": {"repeat": 5}}, ["measure"]),
        ({"name": "x", "models": ["gam"], "axis": {"seq_len": 8}}, []),
        ({"name": "x", "models": ["gam"], "axes": {"seq_len": 8}, "dtype": "float8"}, ["dtype"]),
        ({"name": "x", "models": ["gam"], "axes": {"seq_len": 8}, "profiles": {"tpu": {}}}, ["profiles"]),
        ({"name": "x", "models": ["gam"], "axes": {"seq_len": 8}, "profiles": {"cpu": {"name": "y"}}}, None),
    ],
)
def test_schema_catches_mistakes(suite, path):
    errors = list(_validator().iter_errors(suite))
    assert errors
    if path is not None:
        assert [list(e.absolute_path)[:1] for e in errors][0] == path


def test_schema_accepts_the_short_forms():
    suite = {
        "name": "x",
        "models": ["gam", {"name": "transformer", "overrides": {"n_heads": 2}}],
        "axes": {"seq_len": [8, 16], "batch_size": 2, "d_model": 32},
        "dtype": "float16",
        "mode": ["forward", "forward_backward"],
        "profiles": {"cpu": {"axes": {"seq_len": 4}, "measure": {"repeats": 3}}},
    }
    assert list(_validator().iter_errors(suite)) == []


def test_schema_command_writes_stdout_or_a_file(tmp_path, capsys):
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == schema_text()
    assert main(["schema", "-o", str(tmp_path / "s.json")]) == 0
    assert (tmp_path / "s.json").read_text() == schema_text()


def test_schema_command_refuses_a_folder_in_one_line(tmp_path, capsys):
    assert main(["schema", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a folder, not a file" in err
