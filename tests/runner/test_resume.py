"""Resume: kill `gam-bench run` with SIGKILL mid-sweep, rerun, and find every finished row
intact and no cell stored ok twice. Also --fresh, --only and --dry-run."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from gam_bench import store
from gam_bench.runner import run_suite

pytestmark = pytest.mark.slow  # spawns several workers (torch imports)

SUITE = """
name: resume
models:
  - {name: test-tiny, overrides: {sleep_s: 0.05}}
  - test-pid
axes: {seq_len: [4, 8, 16, 32, 64, 128], batch_size: 1}
level: block
mode: forward
measure: {warmup: 1, repeats: 3, flops: true}
limits: {timeout_s: 60}
"""
N_CELLS = 12


def _start(path, out, env):
    cmd = [sys.executable, "-m", "gam_bench", "run", str(path), "--out", str(out), "--no-report"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_9_mid_sweep_then_resume(write_suite, tmp_path, cli_env):
    path, out = write_suite(SUITE), tmp_path / "results"
    proc = _start(path, out, cli_env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and len(store.part_files(out)) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = store.load(out)
    assert 3 <= len(before) < N_CELLS
    assert (before["status"] == "ok").all()

    rerun = _start(path, out, cli_env)
    stdout, stderr = rerun.communicate(timeout=180)
    assert rerun.returncode == 0, stderr
    assert f"resuming: {len(before)} of {N_CELLS} cells already stored ok" in stdout
    assert f"[{N_CELLS - len(before)}/{N_CELLS - len(before)}] ok" in stdout  # plain lines when not a TTY

    after = store.load(out)
    assert len(after) == N_CELLS and after["cell_id"].is_unique and (after["status"] == "ok").all()
    kept = after.set_index("run_id").loc[before["run_id"]]
    assert (kept["time_ms"].to_numpy() == before["time_ms"].to_numpy()).all()  # finished rows intact


def test_rerun_skips_done_cells_and_fresh_reruns_them(write_suite, tmp_path):
    path, out = write_suite(SUITE.replace("sleep_s: 0.05", "sleep_s: 0.0")), tmp_path / "results"
    run_suite(path, out=out, only=["test-pid"], progress=False, report=False)
    assert len(store.load(out)) == 6
    run_suite(path, out=out, only=["test-pid"], progress=False, report=False)
    assert len(store.load(out)) == 6  # nothing ran again
    run_suite(path, out=out, only=["test-pid"], fresh=True, progress=False, report=False)
    df = store.load(out)
    assert len(df) == 12 and df.groupby("cell_id").size().eq(2).all()
    assert len(store.latest(df)) == 6


def test_dry_run_prints_cells_and_runs_nothing(write_suite, tmp_path, cli_env):
    path, out = write_suite(SUITE), tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "gam_bench", "run", str(path), "--out", str(out), "--dry-run", "--only", "test-pid"],
        env={**cli_env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "6 cells, 0 already stored ok; nothing run (--dry-run)" in proc.stdout
    assert "test-pid" in proc.stdout and "test-tiny" not in proc.stdout
    assert not out.exists()


def test_only_with_a_model_outside_the_suite_is_a_user_error(write_suite, cli_env):
    proc = subprocess.run(
        [sys.executable, "-m", "gam_bench", "run", str(write_suite(SUITE)), "--only", "gam"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == "gam-bench: error: --only: model 'gam' is not in this suite (its models: test-tiny, test-pid)"
    )


def test_ctrl_c_of_a_local_sweep_keeps_finished_rows_and_resumes(write_suite, tmp_path):
    """A real SIGINT mid-sweep (as a terminal sends): KeyboardInterrupt, no row for the cell cut
    short, its worker gone; the rerun runs only what is missing."""
    path, out = write_suite(SUITE.replace("sleep_s: 0.05", "sleep_s: 0.3")), tmp_path / "results"
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (see test_ray)
    seen: dict = {}

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (out.exists() and len(store.part_files(out)) >= 3):
            time.sleep(0.05)
        seen["parts"] = len(store.part_files(out)) if out.exists() else 0
        os.kill(os.getpid(), signal.SIGINT)

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        watcher.start()
        with pytest.raises(KeyboardInterrupt):
            run_suite(path, out=out, progress=False, report=False)
        watcher.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    before = store.load(out)
    assert 3 <= len(before) < N_CELLS and (before["status"] == "ok").all(), seen
    assert not [p for p in multiprocessing.active_children() if p.is_alive()]  # the worker was ended
    run_suite(path, out=out, progress=False, report=False)
    after = store.load(out)
    assert len(after) == N_CELLS and after["cell_id"].is_unique and (after["status"] == "ok").all()
    kept = after[after["cell_id"].isin(before["cell_id"])]
    assert sorted(kept["run_id"]) == sorted(before["run_id"])  # finished cells were not run again
