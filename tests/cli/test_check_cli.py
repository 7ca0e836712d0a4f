"""`gam-bench check`: input errors before any run, threshold precedence, baseline recording."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import pytest
import yaml

ANALYSIS = Path(__file__).resolve().parents[1] / "analysis"
sys.path.insert(0, str(ANALYSIS))  # perf_models and compare_rows; spawned workers inherit sys.path
from compare_rows import row  # noqa: E402

from gam_bench import store  # noqa: E402
from gam_bench.analysis.compare_settings import RegressionSettings  # noqa: E402
from gam_bench.baselines import record_baseline  # noqa: E402
from gam_bench.cli.compare import gate_settings  # noqa: E402
from gam_bench.cli.main import main  # noqa: E402

SUITE = ANALYSIS / "perf_suite.yaml"


def test_missing_baseline_exits_2_with_the_way_to_record_one(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert main(["check", str(SUITE), "--baseline", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"gam-bench: error: --baseline: {missing} does not exist; record one with "
        f"`gam-bench check SUITE --baseline {missing} --update`"
    )


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--time-threshold", "0"], "--time-threshold: Input should be greater than 0"),
        (["--reruns", "-1"], "--reruns: must be 0 or more (got -1)"),
        (["--update", "--runs", "0"], "--runs: must be 1 or more (got 0)"),
    ],
)
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
    store.write_suite_meta(runs[0], suite="perf", source="perf_suite.yaml", regression={"alpha": 0.05})
    assert record_baseline(runs, baseline) == 1  # cells in run-1
    assert store.read_suite_meta(baseline / "run-1")["regression"] == {"alpha": 0.05}  # the suite record travels
    assert not loose_part.exists() and not old_run.exists() and not old_run.parent.exists()
    assert other.exists() and (baseline / "README.md").exists()
    for i, run in enumerate(runs, start=1):
        assert sorted(p.name for p in (baseline / f"run-{i}").glob("*.parquet")) == sorted(
            p.name for p in run.glob("*.parquet")
        )
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


# ---------------------------------------------------------------- --against REV

REPO = Path(__file__).resolve().parents[2]
in_git = pytest.mark.skipif(not (REPO / ".git").exists(), reason="needs the git checkout of gam-bench")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--against", "no-such-rev-xyz"], "--against: 'no-such-rev-xyz' is not a commit of the git repository at"),
        (["--against", "HEAD", "--update"], "--update: records into --baseline PATH; it cannot be used with --against"),
        (["--against", "HEAD", "--rounds", "0"], "--rounds: must be 1 or more (got 0)"),
    ],
)
@in_git
def test_against_bad_input_exits_2_in_one_line(capsys, flags, message):
    assert main(["check", str(SUITE), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_against_and_baseline_are_exclusive(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:  # argparse: usage and one error line
        main(["check", str(SUITE), "--against", "HEAD", "--baseline", str(tmp_path)])
    assert info.value.code == 2
    assert "argument --baseline: not allowed with argument --against" in capsys.readouterr().err


def _clone(tmp_path: Path) -> Path:
    """A scratch clone of this repository at HEAD, so tests can change its working tree."""
    import subprocess

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)], check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
    subprocess.run(["git", "checkout", "--quiet", "--detach", head.stdout.strip()], cwd=clone, check=True)
    return clone


def _check_in(clone: Path, *flags: str):
    """`gam-bench check` of this checkout's code (the code under test) on the clone's suites.
    Run from outside the clone: `python -m` would put the clone's own gam_bench first."""
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for var in ("GAM_BENCH_PERF_WORK", "GAM_BENCH_PERF_EXTRA_MB", "GAM_BENCH_PERF_FAIL_AT"):
        env.pop(var, None)
    return subprocess.run(
        [sys.executable, "-m", "gam_bench", "check", *flags],
        cwd=clone.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@in_git
@pytest.mark.slow
def test_against_runs_the_base_revision_and_flags_what_the_working_tree_changed(tmp_path):
    """The working tree of a clone makes perf-block hold 64 MiB more than the committed one:
    `check --against HEAD` measures the committed code (its own worktree) and the working tree,
    and flags the memory regression of every cell; times are not judged (threshold x6)."""
    clone = _clone(tmp_path)
    models = clone / "tests" / "analysis" / "perf_models.py"
    models.write_text(models.read_text().replace('os.environ.get(EXTRA_MB_ENV, "0")', '"64"'))
    out, md = tmp_path / "out", tmp_path / "gate.md"
    proc = _check_in(
        clone,
        str(clone / "tests" / "analysis" / "perf_suite.yaml"),
        "--against",
        "HEAD",
        "--rounds",
        "1",
        "--out",
        str(out),
        "--markdown",
        str(md),
        "--time-threshold",
        "5",
    )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr
    assert "round 1 of 1: base" in proc.stdout
    base, head = store.load(out / "base" / "run-1"), store.load(out / "head" / "run-1")
    assert len(base) == len(head) == 4 and set(base["cell_id"]) == set(head["cell_id"])
    grown = head.set_index("cell_id")["peak_mem_bytes"] - base.set_index("cell_id")["peak_mem_bytes"]
    assert (grown > 50 * 2**20).all()
    report = md.read_text()
    assert "regression (memory +" in report and "working tree (1 run)" in report and "HEAD = " in report
    assert "worktree" not in proc.stderr  # the temporary worktree was removed cleanly


@in_git
def test_against_a_revision_without_the_suite_compares_nothing(tmp_path):
    clone = _clone(tmp_path)
    suite = clone / "tests" / "analysis" / "new_suite.yaml"
    suite.write_text((clone / "tests" / "analysis" / "perf_suite.yaml").read_text())
    md = tmp_path / "gate.md"
    proc = _check_in(clone, str(suite), "--against", "HEAD", "--markdown", str(md))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"no baseline: HEAD has no {suite}; nothing compared"
    assert "nothing compared" in md.read_text()


def test_check_warns_before_measuring_when_the_rank_test_can_never_reach_alpha(tmp_path, capsys):
    """2 processes a side can never reach alpha = 0.01: said up front, naming the fewest that can (5)."""
    suite = yaml.safe_load(SUITE.read_text())
    suite["measure"] = {**suite.get("measure", {}), "processes": 2}
    suite["regression"] = {"alpha": 0.01}
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(suite))
    assert main(["check", str(path), "--baseline", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "measure.processes: 2 a side can never reach regression.alpha = 0.01" in err
    assert "5 processes a side are the fewest that can" in err


def test_run_warns_when_a_gate_suite_can_never_reach_its_alpha(tmp_path):
    from rich.console import Console

    from gam_bench.runner.runner import gate_warnings
    from gam_bench.suite import suite_from_dict

    body = yaml.safe_load(SUITE.read_text())
    body["measure"] = {**body.get("measure", {}), "processes": 3}
    body["regression"] = {"alpha": 0.01}
    console = Console(file=io.StringIO(), width=300)
    gate_warnings(suite_from_dict(body, source=tmp_path / "s.yaml").base, console)
    text = console.file.getvalue()
    assert "measure.processes: 3 a side can never reach regression.alpha = 0.01" in text
    body.pop("regression")
    quiet = Console(file=io.StringIO())
    gate_warnings(suite_from_dict(body, source=tmp_path / "s.yaml").base, quiet)
    assert quiet.file.getvalue() == ""  # not a gate suite: nothing to warn about


def test_a_dry_run_warns_as_the_run_would(tmp_path, capsys):
    body = yaml.safe_load(SUITE.read_text())
    body["measure"] = {**body.get("measure", {}), "processes": 2}
    body["regression"] = {"alpha": 0.01}
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump(body))
    assert main(["run", str(suite), "--dry-run", "--out", str(tmp_path / "out")]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "measure.processes: 2 a side can never reach regression.alpha = 0.01" in err
    assert not (tmp_path / "out").exists()  # nothing run, nothing written
