"""Every command that writes to a path it is given refuses a path of the wrong kind (an existing
file for a folder option, an existing folder for a file option, a path through a file): one
line on stderr naming the option, exit 2, no traceback, and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from gam_bench.cli.main import main

REPO = Path(__file__).resolve().parents[2]
CI_SUITE = str(REPO / "suites" / "ci.yaml")
BASELINE = str(REPO / "results" / "baselines" / "ci")
FIXTURE = str(REPO / "results" / "fixtures" / "report_small")


def _cases(file: Path, folder: Path) -> list[tuple[list[str], str]]:
    """(argv, the option named in the error)."""
    below_file = file / "sub"
    return [
        (["run", CI_SUITE, "--out", str(file)], "--out"),
        (["run", CI_SUITE, "--out", str(below_file)], "--out"),
        (["report", FIXTURE, "-o", str(file)], "--out"),
        (["compare", BASELINE, BASELINE, "--markdown", str(folder)], "--markdown"),
        (["compare", BASELINE, BASELINE, "--markdown", str(below_file / "c.md")], "--markdown"),
        (["check", CI_SUITE, "--baseline", BASELINE, "--out", str(file)], "--out"),
        (["check", CI_SUITE, "--baseline", BASELINE, "--markdown", str(folder)], "--markdown"),
        (["check", CI_SUITE, "--against", "HEAD", "--out", str(file)], "--out"),
        (["check", CI_SUITE, "--baseline", str(file), "--update"], "--baseline"),
        (["schema", "-o", str(folder)], "--out"),
    ]


@pytest.mark.parametrize("case", range(10))
def test_wrong_kind_of_output_path_is_one_line_exit_2_nothing_written(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a default output folder (results/, reports/) would land here
    file, folder = tmp_path / "taken.txt", tmp_path / "a-folder"
    file.write_text("keep me\n")
    folder.mkdir()
    argv, option = _cases(file, folder)[case]
    before = sorted(tmp_path.rglob("*"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"gam-bench: error: {option}: "), err
    assert sorted(tmp_path.rglob("*")) == before and file.read_text() == "keep me\n"
