"""`gam-bench compare`: exit codes, Markdown output, one-line errors (synthetic result folders)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))
from compare_rows import row, samples  # noqa: E402

from gam_bench import store  # noqa: E402
from gam_bench.cli.main import main  # noqa: E402


@pytest.fixture
def results(tmp_path):
    """Write rows to a results folder under tmp_path; returns the folder."""

    def write(name, rows):
        folder = tmp_path / name
        store.append(rows, folder)
        return folder

    return write


def test_unchanged_exits_0_and_prints_the_table(results, capsys):
    base = results("base", [row(64), row(128)])
    cand = results("cand", [row(64, samples(10.0, seed=9)), row(128)])
    assert main(["compare", str(base), str(cand)]) == 0
    out = capsys.readouterr().out
    assert "PASS: 2 cells: 2 unchanged" in out


def test_regression_exits_1_and_writes_markdown(results, tmp_path):
    base = results("base", [row(64), row(128)])
    cand = results("cand", [row(64), row(128, samples(26.0))])
    md = tmp_path / "out" / "perf.md"
    assert main(["compare", str(base), str(cand), "--markdown", str(md)]) == 1
    text = md.read_text()
    assert text.startswith("## :x: gam-bench performance check")
    assert "FAIL: 2 cells: 1 regression, 1 unchanged" in text


def test_new_failure_exits_1(results):
    base = results("base", [row(64)])
    cand = results("cand", [row(64, status="oom", error="out of memory")])
    assert main(["compare", str(base), str(cand)]) == 1


def test_thresholds_come_from_the_flags(results):
    base = results("base", [row(64)])
    cand = results("cand", [row(64, samples(13.0), mem=440 * 2**20)])  # +30% time, +10% memory
    assert main(["compare", str(base), str(cand)]) == 1
    assert main(["compare", str(base), str(cand), "--time-threshold", "0.5"]) == 1  # memory still flags
    assert main(["compare", str(base), str(cand), "--time-threshold", "0.5", "--mem-threshold", "0.2"]) == 0


@pytest.mark.parametrize(
    "argv_tail, message",
    [
        (["--time-threshold", "-1"], "--time-threshold: Input should be greater than 0 (got -1.0)"),
        (["--mem-threshold", "0"], "--mem-threshold: Input should be greater than 0 (got 0.0)"),
    ],
)
def test_bad_thresholds_exit_2(results, capsys, argv_tail, message):
    base = results("base", [row(64)])
    assert main(["compare", str(base), str(base), *argv_tail]) == 2
    assert capsys.readouterr().err.strip() == f"gam-bench: error: {message}"


def test_missing_input_exits_2(results, tmp_path, capsys):
    base = results("base", [row(64)])
    assert main(["compare", str(base), str(tmp_path / "nope")]) == 2
    assert "nope: no such results file or folder" in capsys.readouterr().err


def test_other_thread_count_exits_2_unless_forced(results, capsys):
    base = results("base", [row(64)])
    cand = results("cand", [row(64, threads=4)])
    assert main(["compare", str(base), str(cand)]) == 2
    err = capsys.readouterr().err
    assert "threads=4" in err and "--force" in err and len(err.strip().splitlines()) == 1
    assert main(["compare", str(base), str(cand), "--force"]) == 0
    assert "forced: comparing baseline" in capsys.readouterr().out


def test_the_installed_command_exits_2_without_a_traceback(results, tmp_path):
    base = results("base", [row(64)])
    proc = subprocess.run(
        [sys.executable, "-m", "gam_bench", "compare", str(base), str(tmp_path / "missing")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("gam-bench: error: ")


def test_suite_section_sets_the_thresholds_and_flags_win(results, tmp_path):
    base = results("base", [row(64)])
    cand = results("cand", [row(64, samples(13.0))])  # +30% time
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nmodels: [gam]\naxes: {seq_len: [64]}\nregression: {time_threshold: 0.5}\n")
    assert main(["compare", str(base), str(cand), "--suite", str(suite)]) == 0
    assert main(["compare", str(base), str(cand), "--suite", str(suite), "--time-threshold", "0.2"]) == 1


def _record(folder, **regression):
    store.write_suite_meta(folder, suite="ci", source="suites/ci.yaml", regression=regression or None)


def test_the_thresholds_recorded_with_the_candidate_apply(results, capsys):
    """A 30% slowdown fails under the defaults; the producing suite's time_threshold 0.5 passes it."""
    base = results("base", [row(64)])
    cand = results("cand", [row(64, samples(13.0))])
    assert main(["compare", str(base), str(cand)]) == 1
    out = capsys.readouterr().out
    assert f"thresholds: defaults: {cand} records no suite settings (written by an older gam-bench)" in out
    _record(cand, time_threshold=0.5)
    assert main(["compare", str(base), str(cand)]) == 0
    assert "thresholds: suite 'ci' (regression: settings recorded with" in capsys.readouterr().out
    assert main(["compare", str(base), str(cand), "--time-threshold", "0.2"]) == 1
    assert "thresholds: --time-threshold over suite 'ci'" in capsys.readouterr().out


def test_recorded_alpha_reaches_the_rank_test(results):
    """p = 0.017 at +16%: unchanged at the default alpha 0.01, a regression at the recorded 0.05."""
    steps = [10.0 + 0.5 * i for i in range(14)]
    base = results("base", [row(64, steps[:10])])
    cand = results("cand", [row(64, steps[4:])])
    assert main(["compare", str(base), str(cand)]) == 0
    _record(cand, alpha=0.05)
    assert main(["compare", str(base), str(cand)]) == 1


def test_a_suite_without_a_regression_section_says_defaults(results, capsys):
    base = results("base", [row(64)])
    cand = results("cand", [row(64)])
    _record(cand)
    assert main(["compare", str(base), str(cand)]) == 0
    assert "thresholds: defaults: suite 'ci' has no regression: section" in capsys.readouterr().out


def test_memory_is_judged_on_tensor_bytes_where_both_sides_have_them(results, capsys):
    """RSS grew 30% (noise) but live tensor bytes are identical: unchanged, and the rule names the column."""
    mib = 2**20
    base = results("base", [row(64, mem=100 * mib, peak_tensor_bytes=10 * mib)])
    cand = results("cand", [row(64, mem=130 * mib, peak_tensor_bytes=10 * mib)])
    assert main(["compare", str(base), str(cand)]) == 0
    assert "memory (peak_tensor_bytes)" in capsys.readouterr().out
    grown = results("grown", [row(64, mem=100 * mib, peak_tensor_bytes=13 * mib)])
    assert main(["compare", str(base), str(grown)]) == 1
    old = results("old", [row(64, mem=130 * mib)])  # no tensor bytes on one side: the measured peak
    assert main(["compare", str(base), str(old)]) == 1
    assert "memory (peak_mem_bytes)" in capsys.readouterr().out


def test_a_corrupt_part_is_skipped_with_a_warning_or_refused_with_strict(results, capsys):
    base = results("base", [row(64)])
    cand = results("cand", [row(64)])
    (cand / "part-bad.parquet").write_bytes(b"garbage")
    assert main(["compare", str(base), str(cand)]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith(f"warning: skipped {cand / 'part-bad.parquet'}: not a readable Parquet file (")
    assert len(captured.err.strip().splitlines()) == 1
    assert "PASS: 1 cells: 1 unchanged" in captured.out
    assert main(["compare", str(base), str(cand), "--strict"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"gam-bench: error: {cand / 'part-bad.parquet'}: not a readable Parquet file")
    assert len(err.splitlines()) == 1
