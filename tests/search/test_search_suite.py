"""A suite's `search:` section: validation (one line, file, field and value; exit 2), its cells."""

from __future__ import annotations

import pytest

from gam_bench.cell import expand
from gam_bench.cli.main import main
from gam_bench.errors import UserError
from gam_bench.suite import load_suite, suite_from_dict

BASE = {
    "name": "fit",
    "models": ["gam", "transformer"],
    "axes": {"d_model": 32},
    "level": "block",
    "search": {"start": 512, "max_seq_len": 4096, "multiple_of": 128},
}


def test_a_search_suite_starts_its_cells_at_start():
    suite = suite_from_dict(BASE)
    cells = expand(suite, "cpu", 1)
    assert [(c.model, c.seq_len) for c in cells] == [("gam", 512), ("transformer", 512)]
    assert suite.base.search.max_seq_len == 4096


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"axes": {"d_model": 32, "seq_len": [64, 128]}},
            "f.yaml: axes.seq_len: [64, 128] given with a 'search:' section, which searches seq_len itself; "
            "remove axes.seq_len (search.start is the first length probed)",
        ),
        ({"search": {"start": 500}}, "f.yaml: search: start (500) is not a multiple of multiple_of (64)"),
        ({"search": {"precision": 1.5}}, "f.yaml: search.precision: Input should be less than 1 (got 1.5)"),
        ({"search": {"strat": 512}}, "f.yaml: search.strat: unknown field (value 512)"),
        ({"search": {"budget_s": 0}}, "f.yaml: search.budget_s: Input should be greater than 0 (got 0)"),
        (
            {"measure": {"processes": 3}},
            "f.yaml: measure.processes: 3 with a 'search:' section; each probe runs once, in one fresh worker: use 1",
        ),
        (
            {"task": "recall", "level": "lm", "recall": {"num_kv_pairs": {512: 4}}},
            "f.yaml: search: task 'recall' cannot be searched (search: is for throughput and decode suites)",
        ),
    ],
)
def test_bad_search_settings_are_one_line_errors(change, message):
    with pytest.raises(UserError) as info:
        suite_from_dict({**BASE, **change}, source="f.yaml")
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_a_bad_search_in_a_profile_names_the_profile(tmp_path):
    path = tmp_path / "fit.yaml"
    path.write_text(
        "name: fit\nmodels: [gam]\naxes: {d_model: 32}\nsearch: {start: 512}\n"
        "profiles:\n  cpu:\n    search: {multiple_of: 100}\n"
    )
    with pytest.raises(UserError, match=r"profiles\.cpu\.search: start \(512\) is not a multiple of multiple_of"):
        load_suite(path)


def test_the_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    path = tmp_path / "fit.yaml"
    path.write_text("name: fit\nmodels: [gam]\naxes: {seq_len: 64, d_model: 32}\nsearch: {start: 512}\n")
    assert main(["run", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gam-bench: error: {path}: axes.seq_len: 64 given with a 'search:' section")
    assert err.count("\n") == 1
