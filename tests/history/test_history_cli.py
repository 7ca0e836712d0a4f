"""`gam-bench history` on the command line: a site from fake commits, and bad input as one line,
exit 2 (a missing folder, no rows, rows without a git revision, a missing library)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from gam_bench.cli.main import main

_spec = importlib.util.spec_from_file_location("fake_history", Path(__file__).parent / "fake_history.py")
fake = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake)


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_builds_a_site(tmp_path, capsys):
    pytest.importorskip("plotly")
    pytest.importorskip("ruptures")
    folders = fake.write_history(tmp_path / "r", 4, {("gam", "ops"): (3, 2.0)})
    assert main(["history", *map(str, folders), "--out", str(tmp_path / "site"), "--recent", "2"]) == 0
    out = capsys.readouterr().out
    assert "4 commits, 3 cells, 9 trends, 1 change points (1 in the newest 2 commits)" in out
    assert (tmp_path / "site" / "index.html").is_file()


def test_check_against_folders_feed_it(tmp_path, capsys):
    """`check --against --out perf` keeps perf/base/run-N and perf/head/run-N: passed as they are."""
    pytest.importorskip("plotly")
    pytest.importorskip("ruptures")
    rng = np.random.default_rng(0)
    for run in (1, 2):
        fake.write_commit(tmp_path, 0, {}, rng, folder=tmp_path / "perf" / "base" / f"run-{run}")
        fake.write_commit(tmp_path, 1, {("gam", "ops"): 1.5}, rng, folder=tmp_path / "perf" / "head" / f"run-{run}")
    perf = tmp_path / "perf"
    assert main(["history", str(perf / "base"), str(perf / "head"), "--out", str(tmp_path / "site")]) == 0
    assert "2 commits, 3 cells, 9 trends, 1 change points" in capsys.readouterr().out
    index = (tmp_path / "site" / "index.html").read_text()
    assert fake.sha_of(1)[:10] in index.split('id="steps"')[1] and "+48.4%" in index  # 31 -> 46 ops


def test_missing_folder(tmp_path, capsys):
    assert main(["history", str(tmp_path / "nope"), "--out", str(tmp_path / "site")]) == 2
    assert "nope: no such results file or folder" in _error(capsys)


def test_no_rows(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["history", str(tmp_path / "empty"), "--out", str(tmp_path / "site")]) == 2
    assert "empty: no result rows" in _error(capsys)


def test_no_revision(tmp_path, capsys):
    folder = fake.write_commit(tmp_path, 0, {}, np.random.default_rng(0), with_revision=False)
    assert main(["history", str(folder), "--out", str(tmp_path / "site")]) == 2
    line = _error(capsys)
    assert str(folder) in line and "no row records its git revision (git_sha" in line
    assert not (tmp_path / "site").exists()


def test_rows_without_revision_beside_others_are_skipped_with_a_warning(tmp_path, capsys):
    pytest.importorskip("plotly")
    pytest.importorskip("ruptures")
    rng = np.random.default_rng(0)
    folder = fake.write_commit(tmp_path / "r", 0, {}, rng)
    fake.store.append([{"cell_id": "x", "status": "ok", "run_id": "orphan"}], folder)
    assert main(["history", str(folder), "--out", str(tmp_path / "site")]) == 0
    assert "skipped 1 rows without a git revision" in capsys.readouterr().err


def test_missing_plotly_names_the_extra(tmp_path, capsys, monkeypatch):
    folders = fake.write_history(tmp_path / "r", 2)
    monkeypatch.setitem(sys.modules, "plotly", None)
    assert main(["history", *map(str, folders), "--out", str(tmp_path / "site")]) == 2
    assert _error(capsys) == "gam-bench: error: gam-bench history needs plotly: pip install 'gam-bench[html]'"


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--recent", "0"], "--recent: must be 1 or more"), (["--min-step", "0"], "--min-step: a fraction above 0")],
)
def test_bad_options(tmp_path, capsys, args, message):
    folders = fake.write_history(tmp_path / "r", 1)
    assert main(["history", str(folders[0]), "--out", str(tmp_path / "site"), *args]) == 2
    assert message in _error(capsys)


def test_repo_that_is_no_checkout(tmp_path, capsys):
    folders = fake.write_history(tmp_path / "r", 1)
    assert main(["history", str(folders[0]), "--out", str(tmp_path / "s"), "--repo", str(tmp_path / "r")]) == 2
    assert "--repo:" in _error(capsys)
