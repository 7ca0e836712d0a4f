"""`measure.processes` and the early worker with real spawned workers (local executor):
a cell over 2 processes keeps both processes' samples, from two distinct worker pids, and
a worker started before planning (prestart) is the one the first cell runs on."""

from __future__ import annotations

import numpy as np
from cells import make_cell

from gam_bench import store
from gam_bench.runner import run_suite
from gam_bench.runner.local import LocalExecutor
from gam_bench.settings import Measure

PROCESSES = """
name: processes
models: [test-pid]
axes: {seq_len: [8], batch_size: 1}
level: block
mode: forward
measure: {warmup: 1, repeats: 3, flops: false, processes: 2}
limits: {timeout_s: 120}
"""


def test_a_cell_over_two_processes_keeps_both_processes_samples(write_suite, tmp_path):
    out = tmp_path / "out"
    run_suite(write_suite(PROCESSES), out=out, progress=False, report=False)
    (row,) = store.load(out).to_dict("records")
    assert row["status"] == "ok" and row["processes"] == 2
    pids = list(row["process_pids"])
    assert len(set(pids)) == 2 and row["backend"] == f"pid-{pids[0]}"  # the first process's row, its worker
    samples, medians = list(row["time_samples_ms"]), list(row["process_medians_ms"])
    assert len(samples) == 6 and len(medians) == 2
    assert medians == [float(np.median(samples[:3])), float(np.median(samples[3:]))]
    assert row["time_ms"] == float(np.median(samples))


def test_the_prestarted_worker_runs_the_first_cell():
    ex = LocalExecutor(device="cpu", plugins=["faulty_models"])
    try:
        ex.prestart()
        pid = ex._all[0].pid
        assert pid is not None and ex._all[0].early
        cell = make_cell(model="test-pid", plugins=["faulty_models"], measure=Measure(warmup=0, repeats=1, flops=False))
        outcome = ex.run(cell)
        assert outcome.status == "ok" and outcome.rows[0]["backend"] == f"pid-{pid}"
        assert ex.run(cell).rows[0]["backend"] == f"pid-{pid}"  # and is reused after it
    finally:
        ex.close()


def test_the_worker_starts_early_only_with_an_idle_core_and_a_named_device(monkeypatch, write_suite):
    from gam_bench.runner import runner
    from gam_bench.suite import load_suite

    suite = load_suite(write_suite(PROCESSES))
    cores = len(runner.os.sched_getaffinity(0))
    monkeypatch.setattr(runner.os, "getloadavg", lambda: (float(cores), 0.0, 0.0))  # every core busy
    assert runner._early_executor(suite, None, "local", {}) is None
    monkeypatch.setattr(runner.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert runner._early_executor(suite, "auto", "local", {}) is None  # "auto" needs torch to resolve
    early = runner._early_executor(suite, None, "local", {})
    try:
        assert early is not None and early._all[0].early and early._all[0].worker.process.is_alive()
    finally:
        early.close()
    assert early._all[0].worker is None
    counting = load_suite(write_suite(PROCESSES.replace("measure: {", "measure: {instructions: true, ")))
    assert runner._early_executor(counting, None, "local", {}) is None  # its counting pass starts its own
    search = PROCESSES.replace("seq_len: [8], ", "").replace("processes: 2}", "processes: 1}")
    search = search.replace("measure: {", "search: {start: 64, max_seq_len: 128}\nmeasure: {")
    assert runner._early_executor(load_suite(write_suite(search)), None, "local", {}) is None  # probes: fresh
