"""Compiled cells end to end: suite fields -> cells -> pre-flight -> throughput rows.

Inductor work is kept tiny: the compiling tests use the one-linear test-tiny block at d_model 8,
T 8 (one forward+backward compile in process, one forward compile in a worker).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from cells import make_cell

from gam_bench import execution, store
from gam_bench.cell import expand
from gam_bench.cli.main import main
from gam_bench.measure import calibrate
from gam_bench.runner import preflight, worker
from gam_bench.runner.runner import run_suite
from gam_bench.suite import load_suite, suite_from_dict
from gam_bench.tasks.throughput import measure as throughput

throughput_task = sys.modules["gam_bench.tasks.throughput"]  # the task package (its `_PRIMED` set)

BAD = Path(__file__).resolve().parents[1] / "suites_bad" / "execution"
BODY = {"name": "c", "models": ["gam"], "axes": {"seq_len": [64, 128]}, "device": "cpu"}


def _cells(**fields):
    return expand(suite_from_dict({**BODY, **fields}), "cpu", threads=1)


# --- suite fields and cell ids ---------------------------------------------------------------


def test_compile_is_swept_and_eager_cells_keep_their_ids():
    plain = _cells()
    swept = _cells(compile=["eager", "default"])
    assert len(swept) == 2 * len(plain)
    eager = [c for c in swept if c.compile == "eager"]
    compiled = [c for c in swept if c.compile == "default"]
    assert [c.cell_id for c in eager] == [c.cell_id for c in plain]  # the default is not hashed
    assert [c.config_json for c in eager] == [c.config_json for c in plain]
    assert all(json.loads(c.config_json)["compile"] == "default" for c in compiled)
    assert not {c.cell_id for c in compiled} & {c.cell_id for c in plain}
    assert {c.group_key for c in compiled}.isdisjoint({c.group_key for c in eager})  # separate budget groups
    assert [c.seq_len for c in swept[:2]] == [64, 128]  # lengths still ascend within a group


def test_cuda_graph_is_hashed_only_when_true_and_peak_never():
    cell = _cells()[0]
    assert "cuda_graph" not in json.loads(cell.config_json)
    graphed = cell.model_copy(update={"cuda_graph": True})
    assert json.loads(graphed.config_json)["cuda_graph"] is True and graphed.cell_id != cell.cell_id
    assert cell.model_copy(update={"peak_flops_per_s": 1e11}).cell_id == cell.cell_id


def test_a_compile_mode_string_means_a_one_value_list():
    assert load_suite(BAD.parent.parent.parent / "suites" / "ci.yaml").base.compile == ["eager"]
    assert {c.compile for c in _cells(compile="max-autotune")} == {"max-autotune"}


# --- refused at load time: one line, exit 2 ----------------------------------------------------

REFUSED = {
    "cuda_graph_on_cpu.yaml": "cuda_graph: true needs a CUDA device (device: 'cpu')",
    "reduce_overhead_on_cpu.yaml": "compile: 'reduce-overhead' is inductor with CUDA graphs and needs a CUDA device",
    "unknown_compile_mode.yaml": "compile[0]: Input should be 'eager', 'default', 'reduce-overhead' or 'max-autotune'",
    "compile_for_perplexity.yaml": "compile: default is for throughput and decode cells; task 'perplexity' runs eager",
}


def test_every_execution_fixture_has_a_case():
    assert sorted(p.name for p in BAD.glob("*.yaml")) == sorted(REFUSED)


@pytest.mark.parametrize("fixture", sorted(REFUSED))
def test_bad_execution_fields_are_one_line_errors_with_exit_2(fixture, capsys):
    path = BAD / fixture
    assert main(["run", "--dry-run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gam-bench: error: {path}: ") and err.count("\n") == 1
    assert REFUSED[fixture] in err


# --- the throughput task ---------------------------------------------------------------------


def _tiny(**fields):
    measure = {"warmup": 1, "repeats": 3}
    return make_cell(model="test-tiny", plugins=["faulty_models"], **{"measure": measure, **fields})


def test_compiled_cell_times_the_compiled_step_with_parity_and_no_recompiles():
    import faulty_models  # noqa: F401 - registers test-tiny

    cell = _tiny(mode="forward_backward", compile="default", peak_flops_per_s=2e9)
    (row,) = throughput.run(cell)
    assert row["compile"] == "default" and row["cuda_graph"] is False
    assert row["compile_s"] > 0
    assert row["recompiles"] == 0  # dynamic=False and one shape: warmup and timing reuse the graph
    assert row["parity_ok"] is True and row["max_rel_err"] < 1e-5 and row["parity_note"] is None
    assert row["flops"] > 0  # counted on the eager step
    assert row["peak_flops_per_s"] == 2e9 and row["mfu"] == pytest.approx(row["flops_per_s"] / 2e9)


def test_eager_cell_has_no_compile_figures_and_mfu_needs_a_peak_and_flops():
    import faulty_models  # noqa: F401

    (row,) = throughput.run(_tiny(peak_flops_per_s=1e9))
    assert (row["compile"], row["compile_s"], row["recompiles"], row["max_rel_err"], row["parity_ok"]) == (
        "eager",
        None,
        None,
        None,
        None,
    )
    assert row["mfu"] == pytest.approx(row["flops_per_s"] / 1e9)
    (row,) = throughput.run(_tiny())
    assert row["peak_flops_per_s"] is None and row["mfu"] is None
    (row,) = throughput.run(_tiny(peak_flops_per_s=1e9, measure={"flops": False}))
    assert row["flops_per_s"] is None and row["mfu"] is None


class _Off(torch.nn.Module):
    """A stand-in "compiled" module whose outputs are 1% off the eager module's."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) * 1.01  # (B, T, D)


def test_a_row_over_the_parity_tolerance_says_so(monkeypatch):
    import faulty_models  # noqa: F401

    monkeypatch.setattr("gam_bench.execution.step.compile_module", lambda module, compile: _Off(module))
    (row,) = throughput.run(_tiny(mode="forward", compile="default"))
    assert row["parity_ok"] is False and row["max_rel_err"] == pytest.approx(0.01, rel=1e-3)
    assert row["parity_note"] == "max_rel_err 0.01 > tol 0.0001 (float32)"


def test_a_step_that_recompiles_is_counted_in_the_row():
    """The counter is not stuck at 0: a block that changes a guarded attribute at every call
    recompiles during warmup and timing, and the row says so."""
    import compile_models  # noqa: F401 - registers test-recompile

    cell = make_cell(model="test-recompile", mode="forward", compile="default", measure={"warmup": 1, "repeats": 2})
    (row,) = throughput.run(cell)
    assert row["compile"] == "default" and row["compile_s"] > 0
    assert row["recompiles"] >= 1


def test_a_compile_failure_raises_compile_error_with_the_reason():
    import compile_models  # noqa: F401 - registers test-nocompile

    cell = make_cell(model="test-nocompile", compile="default", measure={"warmup": 0, "repeats": 1})
    assert throughput.run(cell.model_copy(update={"compile": "eager"}))  # runs eagerly
    with pytest.raises(execution.CompileError, match=r"mode='default'.*Unsupported: Call to `torch._dynamo.graph_br"):
        throughput.run(cell)


def test_worker_primes_a_compiled_cell_eagerly(monkeypatch):
    seen = []
    monkeypatch.setattr(throughput, "run", lambda cell, ctx=None: seen.append(cell))
    monkeypatch.setattr(throughput_task, "_PRIMED", set())
    worker._prime_model(_tiny(compile="max-autotune", seq_len=64))
    assert [(c.compile, c.cuda_graph, c.seq_len) for c in seen] == [("eager", False, 16)]


# --- calibration once per sweep, in the parent ---------------------------------------------------


@pytest.fixture
def peaks(monkeypatch):
    calls = []

    def peak_for(device, dtype, threads, **measure):
        calls.append((device, dtype, threads))
        peak = {"float32": 4e9, "bfloat16": 1e9}[dtype]
        return {"peak_flops_per_s": peak, "measured_now": len(calls) == 1, "key": f"key{len(calls)}"}

    monkeypatch.setattr(calibrate, "peak_for", peak_for)
    monkeypatch.delenv(preflight.CALIBRATE_ENV, raising=False)
    return calls


def test_peaks_are_looked_up_once_per_device_dtype_and_threads(peaks, monkeypatch):
    cells = _cells(dtype=["float32", "bfloat16"], compile=["eager", "default"])
    notes = []
    out = preflight.with_peaks(cells, note=notes.append)
    assert len(notes) == 1 and notes[0].startswith("calibration: measured key1 in ")  # the first measures
    assert sorted(peaks) == [("cpu", "bfloat16", 1), ("cpu", "float32", 1)]
    assert {(c.dtype, c.peak_flops_per_s) for c in out} == {("float32", 4e9), ("bfloat16", 1e9)}
    assert [c.cell_id for c in out] == [c.cell_id for c in cells]
    no_flops = _cells(measure={"flops": False})
    assert all(c.peak_flops_per_s is None for c in preflight.with_peaks(no_flops))
    assert preflight.with_peaks(cells, enabled=False) == cells
    monkeypatch.setenv(preflight.CALIBRATE_ENV, "0")
    assert preflight.with_peaks(cells) == cells
    assert len(peaks) == 2


def test_a_compile_failure_is_an_error_row_and_the_sweep_goes_on(write_suite, tmp_path, peaks):
    path = write_suite(
        """
        name: compiled
        plugins: [faulty_models, compile_models]
        models: [test-nocompile, test-tiny]
        axes: {seq_len: [8]}
        mode: forward
        compile: default
        measure: {warmup: 1, repeats: 2}
        """
    )
    out = run_suite(path, out=tmp_path / "results", progress=False, report=False)
    rows = store.load(out).set_index("model")
    assert peaks == [("cpu", "float32", 1)]  # once, in the parent
    failed, ok = rows.loc["test-nocompile"], rows.loc["test-tiny"]
    assert failed["status"] == "error" and failed["compile"] == "default"
    assert "CompileError: torch.compile(mode='default') failed: Unsupported" in failed["error"]
    assert ok["status"] == "ok" and ok["compile"] == "default" and ok["compile_s"] > 0
    assert ok["recompiles"] == 0 and bool(ok["parity_ok"]) is True
    assert ok["mfu"] == pytest.approx(ok["flops_per_s"] / 4e9)


# --- CUDA graphs (CUDA only; refused on a CPU at load time, above) ------------------------------


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_cell_times_replays_with_parity():
    import faulty_models  # noqa: F401

    (row,) = throughput.run(_tiny(device="cuda", mode="forward", cuda_graph=True))
    assert row["cuda_graph"] is True and row["compile"] == "eager" and row["compile_s"] is None
    assert row["parity_ok"] is True and row["time_ms"] > 0


def test_progress_and_summary_name_the_execution_mode():
    from rich.console import Console

    from gam_bench.runner.progress import cell_label, summary_table

    assert cell_label(_tiny(compile="default")).endswith("T=8 compile=default")
    assert "compile" not in cell_label(_tiny()) and cell_label(_tiny(cuda_graph=True)).endswith("T=8 cuda_graph")
    base = dict(model="m", level="block", mode="forward", dtype="float32", batch_size=1, seq_len=8, status="error")
    console = Console(width=200, record=True)
    console.print(summary_table([{**base, "compile": "max-autotune"}, {**base, "compile": "eager"}], "t"))
    lines = [line for line in console.export_text().splitlines() if "block/forward/float32" in line]
    assert "block/forward/float32/compile=max-autotune" in lines[0] and "compile" not in lines[1]
