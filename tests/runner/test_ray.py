"""The Ray executor on a local Ray cluster (`ray.init(num_cpus=2)`, one per module):
stored rows match a local run of the same suite (cell_ids, statuses), failures / timeouts /
memory caps / budget skipping are recorded as locally, an interrupted Ray sweep resumes,
and the CLI flags work. Importing gam_bench (or running locally) never imports ray."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch
from cells import make_cell

from gam_bench import store
from gam_bench.errors import UserError
from gam_bench.runner import run_suite
from gam_bench.runner.ray_executor import INSTALL_HINT, capacity, cpus_per_gpu, death_reason, resources

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'gam-bench[ray]')")
HEADER = "plugins: [faulty_models]\ndevice: cpu\nthreads: 1\n"
LENGTHS = (8, 24)  # priming runs at min(seq_len, 16): keep fail_at off 16

FAILURES = """
name: ray-failures
models:
  - test-pid
  - {name: test-raises, overrides: {fail_at: 24}}
  - {name: test-tiny, overrides: {alloc_mb: 2048}}  # over the 1.5 GiB cap
  - test-hang
  - {name: test-kill, overrides: {fail_at: 8}}
axes: {seq_len: [8, 24], batch_size: 1}
level: block
mode: forward
measure: {warmup: 1, repeats: 2, flops: false}
limits: {timeout_s: 10, mem_cap_gb: 1.5}  # 4 s timed out a healthy cell under load (CI, 2026-12-06)
"""

SLOW = """
name: ray-resume
models: [{name: test-tiny, overrides: {sleep_s: 0.5}}, test-pid]  # ~2 s a tiny cell: Ctrl-C lands mid-sweep
axes: {seq_len: [4, 8, 16, 32, 64], batch_size: 1}
level: block
mode: forward
measure: {warmup: 1, repeats: 2, flops: false}
limits: {timeout_s: 60}
"""


@pytest.fixture(scope="module")
def ray_cluster():
    if not HAVE_RAY:
        pytest.skip("ray is not installed")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def suites(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray")
    paths = {}
    for name, body in (("failures", FAILURES), ("slow", SLOW)):
        paths[name] = folder / f"{name}.yaml"
        paths[name].write_text(HEADER + body)
    return paths


def by_cell(df):
    return {(r.model, r.seq_len): r for r in df.itertuples()}


# ---------------------------------------------------------------- same rows as a local run


@needs_ray
@pytest.mark.slow
def test_ray_rows_match_a_local_run_failures_included(ray_cluster, suites, tmp_path):
    local = store.load(run_suite(suites["failures"], out=tmp_path / "local", progress=False, report=False))
    remote = store.load(
        run_suite(suites["failures"], out=tmp_path / "ray", executor="ray", progress=False, report=False)
    )
    assert sorted(zip(remote["cell_id"], remote["status"])) == sorted(zip(local["cell_id"], local["status"]))
    assert set(remote["executor"]) == {"ray"} and set(remote["threads"]) == {1}
    rows = by_cell(remote)
    expected = {
        "test-pid": ["ok", "ok"],
        "test-raises": ["ok", "error"],
        "test-tiny": ["oom", "skipped"],  # the memory cap holds inside a Ray worker
        "test-hang": ["timeout", "skipped"],
        "test-kill": ["error", "ok"],  # a SIGKILLed worker is replaced
    }
    assert {m: [rows[(m, n)].status for n in LENGTHS] for m in expected} == expected
    assert "ValueError: this model always fails" in rows[("test-raises", 24)].error
    assert rows[("test-kill", 8)].error.startswith("worker died during the cell")
    assert "pid" in rows[("test-kill", 8)].error
    assert "timeout of 10 s" in rows[("test-hang", 8)].error
    assert "budget: same settings ended timeout at seq_len=8" in rows[("test-hang", 24)].error
    ok = remote[remote["status"] == "ok"]
    assert ok["time_ms"].notna().all() and ok["hostname"].notna().all()


@needs_ray
def test_slots_follow_the_cluster_and_the_limit(ray_cluster):
    from gam_bench.runner.ray_executor import RayExecutor

    cell = make_cell(device="cpu", threads=1)
    executor = RayExecutor(device="cpu", plugins=[])
    try:
        assert executor.slots([cell]) == 2  # num_cpus=2, one CPU per cell
        assert executor.slots([cell.model_copy(update={"threads": 2})]) == 1
        with pytest.raises(UserError, match="no node of the Ray cluster has 3 CPU"):
            executor.slots([cell.model_copy(update={"threads": 3})])
    finally:
        executor.close()
    assert ray_cluster.is_initialized()  # a cluster it did not start is left running
    limited = RayExecutor(device="cpu", plugins=[], max_concurrency=1)
    assert limited.slots([cell]) == 1
    limited.close()


# ---------------------------------------------------------------- interrupt, then resume


def _interrupt_after(out, parts: int) -> tuple[threading.Thread, dict]:
    """Ctrl-C this process (a real SIGINT, as a terminal sends) once `parts` part files are
    stored, or 60 s from now. Returns the watcher and what it saw, for failure messages."""
    seen: dict = {}

    def watch() -> None:
        start = deadline = time.monotonic()
        deadline += 60
        while time.monotonic() < deadline:
            if out.exists() and len(store.part_files(out)) >= parts:
                break
            time.sleep(0.05)
        seen.update(parts=len(store.part_files(out)) if out.exists() else 0, after_s=time.monotonic() - start)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread, seen


@needs_ray
@pytest.mark.slow
def test_an_interrupted_ray_sweep_resumes(ray_cluster, suites, tmp_path):
    out = tmp_path / "results"
    # Python's own Ctrl-C handler, as in a terminal: a process started in the background by a
    # non-interactive shell (`cmd &`, as some CI scripts do) inherits SIGINT ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _interrupt_then_resume(ray_cluster, suites, out)
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt_then_resume(ray_cluster, suites, out):
    watcher, seen = _interrupt_after(out, parts=3)
    start = time.monotonic()
    try:
        run_suite(suites["slow"], out=out, executor="ray", progress=False, report=False)
    except KeyboardInterrupt:
        pass
    else:
        pytest.fail(f"the sweep ended ({time.monotonic() - start:.1f} s) without the Ctrl-C; watcher saw {seen}")
    watcher.join()
    before = store.load(out)
    assert 3 <= len(before) < 10 and (before["status"] == "ok").all()  # no row for the cells cut short
    _wait_for(lambda: ray_cluster.available_resources().get("CPU") == 2.0)  # its workers were killed

    run_suite(suites["slow"], out=out, executor="ray", progress=False, report=False)
    after = store.load(out)
    assert len(after) == 10 and after["cell_id"].is_unique and (after["status"] == "ok").all()
    kept = after[after["cell_id"].isin(before["cell_id"])]
    assert sorted(kept["run_id"]) == sorted(before["run_id"])  # finished cells were not run again


def _wait_for(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


# ---------------------------------------------------------------- the CLI


@needs_ray
@pytest.mark.slow
def test_cli_joins_a_running_cluster(ray_cluster, suites, tmp_path, cli_env):
    address = ray_cluster.get_runtime_context().gcs_address
    out = tmp_path / "results"
    cmd = [
        sys.executable,
        "-m",
        "gam_bench",
        "run",
        str(suites["slow"]),
        "--out",
        str(out),
        "--no-report",
        "--executor",
        "ray",
        "--address",
        address,
        "--max-concurrency",
        "2",
        "--only",
        "test-pid",
    ]
    proc = subprocess.run(cmd, env=cli_env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "[5/5] ok" in proc.stdout  # the same per-cell lines as a local run
    df = store.load(out)
    assert len(df) == 5 and set(df["status"]) == {"ok"} and set(df["executor"]) == {"ray"}
    assert ray_cluster.is_initialized()


@needs_ray
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_cells_get_one_gpu_each(ray_cluster, write_suite, tmp_path):
    suite = write_suite(SLOW.replace("[4, 8, 16, 32, 64]", "[4, 8]")).read_text().replace("device: cpu", "device: cuda")
    path = tmp_path / "cuda.yaml"
    path.write_text(suite)
    df = store.load(run_suite(path, out=tmp_path / "out", executor="ray", progress=False, report=False))
    assert set(df["status"]) == {"ok"} and set(df["device"]) == {"cuda"}
    assert df["device_name"].str.len().gt(0).all()


def test_ray_options_need_the_ray_executor(write_suite, capsys, tmp_path):
    from gam_bench.cli.main import main

    code = main(["run", str(write_suite(SLOW)), "--address", "auto", "--no-report", "--out", str(tmp_path)])
    assert code == 2
    assert "--address: only used with --executor ray" in capsys.readouterr().err


# ---------------------------------------------------------------- ray stays optional


def test_missing_ray_is_a_user_error_with_the_install_command(monkeypatch, write_suite, capsys, tmp_path):
    from gam_bench.cli.main import main

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    code = main(["run", str(write_suite(SLOW)), "--executor", "ray", "--no-report", "--out", str(tmp_path)])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"gam-bench: error: {INSTALL_HINT}"


@pytest.mark.slow
def test_importing_gam_bench_or_running_locally_never_imports_ray(write_suite, tmp_path, cli_env):
    suite = write_suite(SLOW.replace("[4, 8, 16, 32, 64]", "[4]"))
    script = f"""
import sys
import gam_bench, gam_bench.runner, gam_bench.runner.executor, gam_bench.runner.ray_executor
from gam_bench.cli.main import build_parser
build_parser()
assert "ray" not in sys.modules, "import"
from gam_bench.runner import run_suite
run_suite({str(suite)!r}, out={str(tmp_path / "out")!r}, progress=False, report=False)
assert "ray" not in sys.modules, "local run"
print("no ray")
"""
    proc = subprocess.run([sys.executable, "-c", script], env=cli_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("no ray")


# ---------------------------------------------------------------- pure helpers


def test_capacity_counts_whole_workers_per_alive_node():
    nodes = [
        {"Alive": True, "Resources": {"CPU": 8.0, "GPU": 4.0}},
        {"Alive": True, "Resources": {"CPU": 3.0}},
        {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}},
    ]
    assert capacity(nodes, {"CPU": 2.0}) == 4 + 1
    assert capacity(nodes, {"GPU": 1.0, "CPU": 1.0}) == 4
    assert capacity(nodes, {"GPU": 1.0, "CPU": 3.0}) == 2  # CPUs run out before GPUs


def test_a_gpu_worker_asks_for_its_nodes_cpu_share_capped_by_threads():
    nodes = [
        {"Alive": True, "Resources": {"CPU": 32.0, "GPU": 4.0}},
        {"Alive": True, "Resources": {"CPU": 12.0, "GPU": 2.0}},
        {"Alive": True, "Resources": {"CPU": 64.0}},  # no GPU: not a GPU worker's node
        {"Alive": False, "Resources": {"CPU": 2.0, "GPU": 2.0}},
    ]
    assert cpus_per_gpu(nodes, threads=64) == 6.0  # the fewest per GPU over the GPU nodes, not the driver's 64
    assert cpus_per_gpu(nodes, threads=4) == 4.0
    assert cpus_per_gpu([{"Resources": {"CPU": 1.0, "GPU": 2.0}}], threads=8) == 1.0  # at least 1
    assert cpus_per_gpu([], threads=8) == 1.0
    cuda = make_cell(device="cuda", threads=64)
    assert resources(cuda, cpus_per_gpu=6.0) == {"GPU": 1.0, "CPU": 6.0}
    assert resources(make_cell(threads=3)) == {"CPU": 3.0}


@needs_ray
def test_a_worker_runs_and_records_the_threads_ray_gave_it(ray_cluster, write_suite, tmp_path, monkeypatch):
    """A GPU worker's case on the CPU: the cell carries the driver's cores (2), its worker holds 1 CPU."""
    from gam_bench.runner import ray_executor

    monkeypatch.setattr(ray_executor, "resources", lambda cell, cpus_per_gpu=1.0: {"CPU": 1.0})
    path = write_suite(SLOW.replace("[4, 8, 16, 32, 64]", "[4]"))
    path.write_text(path.read_text().replace("threads: 1", "threads: 2"))
    df = store.load(run_suite(path, out=tmp_path / "out", executor="ray", progress=False, report=False))
    assert set(df["status"]) == {"ok"} and list(df["threads"]) == [1, 1]


def test_death_reason_keeps_the_cause_and_where():
    message = (
        "The actor died unexpectedly before finishing this task.\n\tclass_name: CellWorker\n\tpid: 4242\n"
        "\tip: 10.0.0.7\nThe actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR "
        "End of file. Some common causes include: (1) the process was killed by the OOM killer"
    )
    reason = death_reason(RuntimeError(message))
    assert reason.startswith("The actor is dead because its worker process has died.")
    assert "Some common causes" not in reason and "possibly the kernel's OOM killer" in reason
    assert reason.endswith("[pid 4242, ip 10.0.0.7]")
