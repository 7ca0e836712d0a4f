"""Pre-flight: model config fields and values are checked in the parent before any cell runs."""

from __future__ import annotations

import pytest

from gam_bench.errors import UserError
from gam_bench.runner.runner import plan

BASE = """
name: pre
axes: {{seq_len: [8, 16]{axes}}}
level: {level}
models:
  - test-pid
  - {{name: test-tiny, overrides: {overrides}}}
"""


def check(write_suite, overrides="{}", axes="", level="block"):
    path = write_suite(BASE.format(overrides=overrides, axes=axes, level=level))
    return path, plan(path)


def test_a_valid_suite_plans_all_cells(write_suite):
    _, (suite, config, cells) = check(write_suite, overrides="{d_model: 4}", axes=", n_layers: [1, 2]")
    assert len(cells) == 2 * 2 * 2
    assert {c.overrides["d_model"] for c in cells if c.model == "test-tiny"} == {4}


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (
            {"overrides": "{d_modle: 4}"},
            "models[1].overrides.d_modle: model 'test-tiny' has no config field 'd_modle' (did you mean 'd_model'?)",
        ),
        (
            {"axes": ", n_layer: [1, 2]"},
            "axes.n_layer: model 'test-pid' has no config field 'n_layer' (did you mean 'n_layers'?)",
        ),
        (
            {"overrides": "{sleep_s: soon}"},
            "models[1].overrides.sleep_s: model 'test-tiny': invalid config: sleep_s: Input should be a valid number",
        ),
        (
            {"level": "[block, lm]", "overrides": "{alloc_mb: -1.5}"},
            "models[1].overrides.alloc_mb: model 'test-tiny': invalid config",
        ),
    ],
)
def test_bad_model_config_names_file_and_field(write_suite, tmp_path, kwargs, expected):
    with pytest.raises(UserError) as info:
        check(write_suite, **kwargs)
    message = str(info.value)
    assert message.startswith(str(tmp_path / "suite.yaml") + ": ")
    assert expected in message and "\n" not in message


def test_block_level_needs_a_block_implementation(write_suite):
    path = write_suite("name: pre\naxes: {seq_len: [8]}\nlevel: block\nmodels: [test-lm-only]\n")
    with pytest.raises(UserError, match=r"suite.yaml: level: model 'test-lm-only' has no block-level implementation"):
        plan(path)
    path.write_text(path.read_text().replace("level: block", "level: lm"))
    assert [c.level for c in plan(path)[2]] == ["lm"]


def test_only_selects_models(write_suite):
    path = write_suite(BASE.format(overrides="{}", axes="", level="block"))
    _, _, cells = plan(path, only=["test-tiny"])
    assert {c.model for c in cells} == {"test-tiny"} and len(cells) == 2
