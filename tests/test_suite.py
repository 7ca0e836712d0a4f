"""Suite files: parsing, per-device profiles, expansion, cell_id stability, one-line errors."""

from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from gam_bench.cell import Cell, cell_id, expand
from gam_bench.cli.main import main
from gam_bench.errors import UserError
from gam_bench.suite import load_suite, suite_from_dict
from gam_bench.tasks.perplexity.settings import PerplexitySettings

REPO = Path(__file__).resolve().parent.parent
BAD = Path(__file__).resolve().parent / "suites_bad"

VALID = """
name: demo
description: a valid suite
models:
  - gam
  - {name: transformer-naive, overrides: {n_heads: 4}}
axes:
  seq_len: [512, 128, 256]
  batch_size: [2, 4]
  d_model: 64
level: block
mode: [forward, forward_backward]
dtype: float32
device: cpu
measure: {warmup: 2, repeats: 5}
limits: {timeout_s: 30}
profiles:
  cuda:
    axes: {seq_len: [1024, 2048], d_model: 512}
    dtype: float16
    measure: {repeats: 20}
"""


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_valid_suite_loads_with_defaults_and_profiles(tmp_path):
    suite = load_suite(write(tmp_path, VALID))
    assert suite.name == "demo"
    cpu = suite.for_device("cpu")
    assert [m.name for m in cpu.models] == ["gam", "transformer-naive"]
    assert cpu.models[1].overrides == {"n_heads": 4}
    assert cpu.mode == ["forward", "forward_backward"] and cpu.level == ["block"]
    assert cpu.measure.warmup == 2 and cpu.measure.repeats == 5 and cpu.measure.min_run_time_s == 0
    assert cpu.limits.timeout_s == 30 and cpu.limits.mem_cap_fraction == 0.75
    cuda = suite.for_device("cuda:1")
    assert cuda.axes.seq_len == [1024, 2048] and cuda.axes.config_fields() == {"d_model": [512]}
    assert cuda.dtype == ["float16"]
    assert cuda.measure.repeats == 20 and cuda.measure.warmup == 2  # deep merge keeps warmup
    assert cuda.axes.batch_size == [2, 4]


def test_expand_covers_the_grid_in_budget_order(tmp_path):
    suite = load_suite(write(tmp_path, VALID))
    cells = expand(suite, "cpu", threads=2)
    assert len(cells) == 2 * 2 * 2 * 3  # models x modes x batch sizes x lengths
    first = cells[:3]
    assert [c.seq_len for c in first] == [128, 256, 512]  # ascending within a group
    assert len({c.group_key for c in first}) == 1
    assert all(c.threads == 2 and c.device == "cpu" for c in cells)
    naive = [c for c in cells if c.model == "transformer-naive"]
    assert naive[0].overrides == {"n_heads": 4, "d_model": 64}
    assert naive[0].measure.repeats == 5 and naive[0].limits.timeout_s == 30
    assert len({c.cell_id for c in cells}) == len(cells)


def test_cell_id_is_stable_and_ignores_suite_name_and_out(tmp_path):
    a = expand(load_suite(write(tmp_path, VALID)), "cpu", threads=2)
    b = expand(load_suite(write(tmp_path, VALID.replace("name: demo", "name: other"), "b.yaml")), "cpu", threads=2)
    assert [c.cell_id for c in a] == [c.cell_id for c in b]
    cell = a[0].identity()
    assert cell_id({**cell, "suite": "x", "out": "elsewhere"}) == a[0].cell_id
    assert cell_id({**cell, "seq_len": cell["seq_len"] * 2}) != a[0].cell_id
    assert cell_id({**cell, "overrides": {**cell["overrides"], "d_model": 65}}) != a[0].cell_id
    assert cell_id(dict(reversed(list(cell.items())))) == a[0].cell_id  # key order is irrelevant
    assert a[0].model_copy(update={"family": "gam", "d_model": 64, "n_layers": 1}).cell_id == a[0].cell_id


def test_cell_id_golden_value():
    """A cell_id must not change between gam-bench versions for the same cell (resume, compare)."""
    cell = {
        "task": "throughput",
        "model": "gam",
        "overrides": {"d_model": 64},
        "level": "block",
        "mode": "forward",
        "dtype": "float32",
        "device": "cpu",
        "batch_size": 2,
        "seq_len": 128,
        "seed": 0,
        "threads": 2,
        "measure": {"warmup": 1},
        "limits": {"timeout_s": 10},
        "perplexity": None,
        "plugins": [],
    }
    assert cell_id(cell) == "7d82a1569e01491a"
    canonical = json.dumps(cell, sort_keys=True, separators=(",", ":"))
    assert cell_id(cell) == hashlib.sha256(canonical.encode()).hexdigest()[:16]


def test_scalars_and_lists_sweep_the_same():
    base = {"name": "s", "models": ["gam"], "axes": {"seq_len": 64}, "mode": "forward", "device": "cpu"}
    listed = {**base, "axes": {"seq_len": [64]}, "mode": ["forward"]}
    assert [c.cell_id for c in expand(suite_from_dict(base), "cpu", 1)] == [
        c.cell_id for c in expand(suite_from_dict(listed), "cpu", 1)
    ]


BAD_CASES = {
    "unknown_model.yaml": "models[1].name: unknown model 'gaam' (did you mean 'gam'?)",
    "missing_name.yaml": "name: required field is missing",
    "missing_models.yaml": "models: required field is missing",
    "empty_models.yaml": "models: List should have at least 1 item",
    "unknown_field.yaml": "modle: unknown field (value 'forward') (did you mean 'mode'?)",
    "bad_level.yaml": "level[0]: Input should be 'block' or 'lm' (got 'blok')",
    "bad_mode_in_list.yaml": "mode[1]: Input should be 'forward', 'forward_backward' or 'train_step' (got 'fw')",
    "bad_dtype.yaml": "dtype[0]: Input should be 'float32', 'bfloat16' or 'float16' (got 'fp16')",
    "bad_device.yaml": "device: Input should be 'auto', 'cpu', 'cuda', 'mps' or 'xpu' (got 'gpu')",
    "zero_seq_len.yaml": "axes.seq_len[2]: Input should be greater than 0 (got 0)",
    "text_seq_len.yaml": "axes.seq_len[0]: Input should be a valid integer",
    "no_seq_len.yaml": "axes.seq_len: required field is missing",
    "zero_repeats.yaml": "measure.repeats: Input should be greater than or equal to 1 (got 0)",
    "misspelt_measure.yaml": "measure.repeat: unknown field (value 3) (did you mean 'repeats'?)",
    "misspelt_axes.yaml": "axes: required field is missing (found 'axis': did you mean 'axes'?)",
    "misspelt_profile_limits.yaml": "profiles.cpu.limits.timeout: unknown field (value 5) (did you mean 'timeout_s'?)",
    "zero_timeout.yaml": "limits.timeout_s: Input should be greater than 0 (got 0)",
    "overrides_not_mapping.yaml": "models[0].overrides: Input should be a valid dictionary (got 3)",
    "bad_profile_value.yaml": "profiles.cuda.measure.repeats: Input should be greater than or equal to 1 (got 0)",
    "bad_profile_device.yaml": "profiles.gpu: unknown device type 'gpu'",
    "bad_profile_model.yaml": "profiles.cpu.models[0].name: unknown model 'gamm' (did you mean 'gam'?)",
    "duplicate_model.yaml": "models: model 'gam' is listed twice",
    "repeated_axis_value.yaml": "axes: axis 'seq_len' repeats a value: [128, 128]",
    "perplexity_without_section.yaml": "perplexity: task 'perplexity' needs a 'perplexity:' section",
    "missing_plugin.yaml": "plugins[0]: cannot import 'no_such_plugin_module'",
    "bad_yaml.yaml": "invalid YAML at line 3",
    "not_a_mapping.yaml": "a suite file must be a mapping of fields, got list",
    "max_below_repeats.yaml": "measure: max_repeats (2) is below repeats (5)",
    "bad_name.yaml": "name: String should match pattern",
    "bad_model_perplexity.yaml": (
        "models[1].perplexity.dataset: Input should be 'wikitext-2-raw', 'wikitext-2' or 'tinystories' "
        "(got 'tinystorie')"
    ),
    "model_perplexity_without_task.yaml": "models[0].perplexity: per-model perplexity settings need 'task: perplexity'",
    "latin1_text.yaml": "not a UTF-8 text file (byte 0xe9 at offset 9 cannot be decoded)",
    "png_bytes.yaml": "not a UTF-8 text file (byte 0x89 at offset 0 cannot be decoded)",
    "nul_byte.yaml": "invalid YAML: unacceptable character #x0000",
    "bad_profile_model_perplexity.yaml": (
        "profiles.cpu.models[0].perplexity.budget: give exactly one of epochs, tokens, seconds (got epochs, tokens)"
    ),
    "recall_too_many_pairs.yaml": (
        "recall.num_kv_pairs: MQAR: seq_len=128 is too short for num_kv_pairs=40: the pairs take 80 positions "
        "and each query a 2-position slot after them (needs seq_len >= 4 * num_kv_pairs = 160)"
    ),
    "recall_profile_small_vocab.yaml": "profiles.cpu.recall.vocab_size: MQAR: vocab_size=6 is too small",
}


PER_MODEL = """
name: table1
task: perplexity
models:
  - gam
  - {name: gam, perplexity: {dataset: tinystories, budget: {tokens: 4096}}}
  - {name: transformer, overrides: {n_heads: 2}, perplexity: {dataset: tinystories}}
axes: {seq_len: [64], d_model: [32]}
perplexity: {dataset: wikitext-2, budget: {epochs: 2}, lr: 0.01}
"""


def test_per_model_perplexity_fields_replace_the_suites_for_that_entry(tmp_path):
    cells = expand(load_suite(write(tmp_path, PER_MODEL)), "cpu", 1)
    got = [(c.model, c.settings.dataset, c.settings.budget.model_dump(), c.settings.lr) for c in cells]
    assert got == [
        ("gam", "wikitext-2", {"epochs": 2.0, "tokens": None, "seconds": None}, 0.01),
        ("gam", "tinystories", {"epochs": None, "tokens": 4096, "seconds": None}, 0.01),  # budget replaced whole
        ("transformer", "tinystories", {"epochs": 2.0, "tokens": None, "seconds": None}, 0.01),
    ]
    assert cells[2].overrides == {"n_heads": 2, "d_model": 32}
    assert len({c.cell_id for c in cells}) == 3


def test_same_model_twice_is_a_duplicate_only_with_the_same_settings():
    base = {"name": "s", "task": "perplexity", "axes": {"seq_len": 64}, "perplexity": {}}
    twice = {"name": "gam", "perplexity": {"dataset": "tinystories"}}
    with pytest.raises(UserError, match=r"models: model 'gam \(dataset=tinystories\)' is listed twice"):
        suite_from_dict({**base, "models": [twice, twice]})
    assert len(expand(suite_from_dict({**base, "models": ["gam", twice]}), "cpu", 1)) == 2


def test_every_bad_fixture_has_a_case():
    assert sorted(p.name for p in BAD.glob("*.yaml")) == sorted(BAD_CASES)


@pytest.mark.parametrize("fixture", sorted(BAD_CASES))
def test_malformed_suite_gives_its_specific_one_line_error(fixture):
    path = BAD / fixture
    with pytest.raises(UserError) as info:
        load_suite(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert BAD_CASES[fixture] in message
    assert "\n" not in message


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="nope.yaml: cannot read suite file"):
        load_suite(tmp_path / "nope.yaml")


def test_cli_prints_one_line_and_exits_2(capsys):
    assert main(["run", str(BAD / "unknown_model.yaml")]) == 2
    err = capsys.readouterr().err
    where = BAD / "unknown_model.yaml"
    assert err == f"gam-bench: error: {where}: models[1].name: unknown model 'gaam' (did you mean 'gam'?)\n"


@pytest.mark.parametrize("fixture", ["bad_level.yaml", "png_bytes.yaml", "recall_too_many_pairs.yaml"])
def test_cli_subprocess_has_no_traceback(fixture):
    proc = subprocess.run(
        [sys.executable, "-m", "gam_bench", "run", f"tests/suites_bad/{fixture}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"gam-bench: error: tests/suites_bad/{fixture}: {BAD_CASES[fixture]}"]


def test_suite_module_does_not_import_torch():
    code = "import sys, gam_bench.suite; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_shipped_suites_validate():
    for path in sorted((REPO / "suites").glob("*.yaml")):
        suite = load_suite(path)
        for device in ("cpu", "cuda"):
            assert expand(suite, device, threads=2), path


def test_cell_ids_of_the_stored_ci_baseline_are_reproduced():
    """Expanding suites/ci.yaml for cpu gives exactly the cell_ids (and config_json) stored in
    results/baselines/ci: resume and compare keep working across versions."""
    from gam_bench import store

    cells = {c.cell_id: c for c in expand(load_suite(REPO / "suites" / "ci.yaml"), "cpu", threads=2)}
    for run in sorted((REPO / "results" / "baselines" / "ci").iterdir()):
        stored = store.load(run)
        assert sorted(stored["cell_id"]) == sorted(cells), run
        for row in stored.itertuples():
            assert cells[row.cell_id].config_json == row.config_json


def test_a_cell_survives_pickling_unchanged():
    cell = expand(load_suite(REPO / "suites" / "perplexity.yaml"), "cpu", threads=1)[0]
    again = pickle.loads(pickle.dumps(cell))
    assert again == cell and again.cell_id == cell.cell_id and again.settings == cell.settings
    with pytest.raises(ValidationError, match="frozen"):
        cell.seq_len = 1


def test_a_new_cell_field_at_its_default_keeps_cell_ids():
    class Later(Cell):
        later: dict | None = None

    cell = expand(load_suite(REPO / "suites" / "ci.yaml"), "cpu", threads=1)[0]
    later = Later(**cell.model_dump())
    assert later.cell_id == cell.cell_id
    assert Later(**{**cell.model_dump(), "later": {"steps": 4}}).cell_id != cell.cell_id


def test_task_settings_belong_to_their_task():
    cell = expand(load_suite(REPO / "suites" / "ci.yaml"), "cpu", threads=1)[0]
    with pytest.raises(ValidationError, match=r"a throughput cell has no settings \(got PerplexitySettings\)"):
        Cell(**{**cell.model_dump(), "settings": PerplexitySettings()})
    with pytest.raises(ValidationError, match="a perplexity cell needs perplexity settings"):
        Cell(**{**cell.model_dump(), "task": "perplexity"})


def test_measure_processes_at_its_default_keeps_cell_ids():
    """measure.processes came after the legacy `measure` dump: 1 must leave every id as it was."""
    cell = expand(load_suite(REPO / "suites" / "scaling.yaml"), "cpu", threads=1)[0]
    assert cell.measure.processes == 1 and "processes" not in cell.config_json
    two = cell.model_copy(update={"measure": cell.measure.model_copy(update={"processes": 2})})
    assert two.cell_id != cell.cell_id and '"processes":2' in two.config_json
    assert two.group_key != cell.group_key


def test_measure_processes_must_be_positive(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nmodels: [gam]\naxes: {seq_len: [8]}\nmeasure: {processes: 0}\n")
    with pytest.raises(UserError, match="processes"):
        load_suite(path)
