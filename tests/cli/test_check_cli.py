"""`gam-bench check`: input errors before any run, threshold precedence, baseline recording."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
import yaml

ANALYSIS = Path(__file__).resolve().parents[1] / "analysis"
sys.path.insert(0, str(ANALYSIS))  # perf_models and compare_rows; spawned workers inherit sys.path
from compare_rows import row  # noqa: E402

from gam_bench import store  # noqa: E402
from gam_bench.analysis.compare_settings import RegressionSettings  # noqa: E402
from gam_bench.cli.check import record_baseline  # noqa: E402
from gam_bench.cli.compare import gate_settings  # noqa: E402
from gam_bench.cli.main import main  # noqa: E402

SUITE = ANALYSIS / "perf_suite.yaml"


def test_missing_baseline_exits_2_with_the_way_to_record_one(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert main(["check", str(SUITE), "--baseline", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"gam-bench: error: --baseline: {missing} does not exist; record one with "
                   f"`gam-bench check SUITE --baseline {missing} --update`")


@pytest.mark.parametrize("flags, message", [
    (["--time-threshold", "0"], "--time-threshold: Input should be greater than 0"),
    (["--reruns", "-1"], "--reruns: must be 0 or more (got -1)"),
    (["--update", "--runs", "0"], "--runs: must be 1 or more (got 0)"),
])
def test_bad_flags_exit_2_before_running(tmp_path, capsys, flags, message):
    assert main(["check", str(SUITE), "--baseline", str(tmp_path), *flags]) == 2
    assert message in capsys.readouterr().err


def test_bad_suite_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodels: [perf-block]\naxes: {seq_len: [8]}\nregression: {time_threshold: -1}\n")
    assert main(["check", str(bad), "--baseline", str(tmp_path)]) == 2
    assert "bad.yaml: regression.time_threshold: Input should be greater than 0" in capsys.readouterr().err


def test_flags_win_over_the_suite_section():
    suite = RegressionSettings(time_threshold=0.5, mem_threshold=0.5)
    args = argparse.Namespace(time_threshold=0.2, mem_threshold=None)
    settings = gate_settings(args, suite)
    assert (settings.time_threshold, settings.mem_threshold) == (0.2, 0.5)
    assert gate_settings(argparse.Namespace(time_threshold=None, mem_threshold=None)) == RegressionSettings()


def test_record_baseline_replaces_recorded_runs_only(tmp_path):
    runs = [tmp_path / "new1", tmp_path / "new2"]
    for i, run in enumerate(runs):
        store.append([row(64, attempt=i)], run)
    baseline = tmp_path / "baseline"
    loose_part = store.append([row(128)], baseline)
    old_run = store.append([row(128)], baseline / "run-3")
    other = store.append([row(256)], baseline / "older")
    (baseline / "README.md").write_text("kept")
    assert record_baseline(runs, baseline) == 0
    assert not loose_part.exists() and not old_run.exists() and not old_run.parent.exists()
    assert other.exists() and (baseline / "README.md").exists()
    for i, run in enumerate(runs, start=1):
        assert sorted(p.name for p in (baseline / f"run-{i}").glob("*.parquet")) == sorted(
            p.name for p in run.glob("*.parquet"))
    assert not list(baseline.glob(".staging*"))
    with pytest.raises(Exception, match="is a file"):
        record_baseline(runs, baseline / "README.md")


@pytest.mark.slow
def test_update_records_baseline_runs_and_the_suite_thresholds_apply(tmp_path):
    """Record two runs with --update, then check against them with the suite's own thresholds."""
    baseline = tmp_path / "baseline"
    assert main(["check", str(SUITE), "--baseline", str(baseline), "--update"]) == 0
    for run in ("run-1", "run-2"):
        assert set(store.load(baseline / run)["status"]) == {"ok"} and len(store.load(baseline / run)) == 4
    suite = tmp_path / "loose.yaml"
    regression = {"time_threshold": 10.0, "mem_threshold": 10.0}  # 1000%: nothing realistic trips it
    suite.write_text(yaml.safe_dump({**yaml.safe_load(SUITE.read_text()), "regression": regression}))
    md = tmp_path / "perf.md"
    assert main(["check", str(suite), "--baseline", str(baseline), "--markdown", str(md)]) == 0
    text = md.read_text()
    assert "regression if the median moves >= 1000%" in text and ">= 1000% and >= 2 MiB higher" in text
    assert f"Baseline `{baseline} (2 runs)`" in text
