"""Measurement: timing keeps every repeat, FLOPs are counted exactly, gradients never
accumulate, peak memory is reset per cell, and the throughput task fills its columns."""

from __future__ import annotations

import copy
import statistics
import time

import pytest
import torch

from gam_bench import store
from gam_bench.cell import expand
from gam_bench.measure.flops import count_flops
from gam_bench.measure.timing import time_steps
from gam_bench.models.builder import build_for
from gam_bench.runner import run_suite
from gam_bench.runner.worker import run_cell
from gam_bench.suite import suite_from_dict
from gam_bench.tasks.throughput import measure as throughput


def test_time_steps_keeps_every_repeat_in_order():
    calls = []
    timing = time_steps(lambda: calls.append(time.sleep(0.002)), repeats=5)
    assert len(calls) == 5 and len(timing.samples_ms) == 5
    assert all(s >= 2.0 for s in timing.samples_ms)  # sleep is a lower bound, not a threshold on speed
    assert timing.q25_ms <= timing.median_ms <= timing.q75_ms


def test_time_steps_runs_until_min_run_time_within_max_repeats():
    timing = time_steps(lambda: time.sleep(0.01), repeats=2, min_run_time_s=0.1)
    assert len(timing.samples_ms) >= 2 and sum(timing.samples_ms) >= 100
    capped = time_steps(lambda: time.sleep(0.01), repeats=2, min_run_time_s=10, max_repeats=4)
    assert len(capped.samples_ms) == 4


def test_count_flops_of_a_linear_layer_forward_and_backward():
    layer = torch.nn.Linear(16, 32, bias=False)
    x = torch.randn(4, 8, 16)  # (B, T, D)
    assert count_flops(lambda: layer(x)) == 2 * 4 * 8 * 16 * 32
    x.requires_grad_(True)
    # backward: grad wrt input and wrt weight, each as large as the forward
    assert count_flops(lambda: layer(x).sum().backward()) == 3 * 2 * 4 * 8 * 16 * 32


def _cells(level="block", mode="forward_backward", **extra):
    suite = suite_from_dict(
        {
            "name": "m",
            "plugins": ["faulty_models"],
            "models": [{"name": "test-tiny", "overrides": extra}],
            "axes": {"seq_len": [8], "batch_size": [3]},
            "level": level,
            "mode": mode,
            "device": "cpu",
            "measure": {"warmup": 1, "repeats": 4},
        }
    )
    return expand(suite, "cpu", threads=1)


@pytest.mark.parametrize("level", ["block", "lm"])
@pytest.mark.parametrize("mode", ["forward_backward", "train_step"])
def test_gradients_are_set_to_none_between_steps(level, mode):
    """The second step's gradients are those of a fresh backward at the weights it starts from
    (train_step moves the weights, so the reference is a copy taken between the two steps)."""
    cell = _cells(level, mode)[0]
    torch.manual_seed(0)
    module, config = build_for(cell)
    torch.manual_seed(1)  # the step's fixed random inputs
    step = throughput.make_step(cell, module, config)
    step()
    at_second_step = copy.deepcopy(module)
    step()
    torch.manual_seed(1)  # the same inputs, for one plain forward + backward
    at_second_step.zero_grad(set_to_none=True)
    throughput.make_step(_cells(level, "forward_backward")[0], at_second_step, config)()
    if mode == "train_step" and level == "lm":  # the shared LM train step clips its gradients
        torch.nn.utils.clip_grad_norm_(at_second_step.parameters(), 1.0)
    for p, q in zip(module.parameters(), at_second_step.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad)  # accumulated grads would be the sum of both steps


HELD_MB = 64  # above glibc's largest mmap threshold (32 MiB): always fresh pages


@pytest.mark.parametrize("level", ["block", "lm"])
@pytest.mark.parametrize("mode", ["forward", "forward_backward", "train_step"])
def test_throughput_task_fills_its_columns(level, mode, restore_process_limits):
    cell = _cells(level, mode, alloc_mb=HELD_MB)[0]
    result = run_cell(cell, ctx=None)
    assert result["status"] == "ok", result["error"]
    (row,) = result["rows"]
    assert len(row["time_samples_ms"]) == 4
    assert row["time_ms"] == pytest.approx(statistics.median(row["time_samples_ms"]))
    assert row["tokens_per_s"] == pytest.approx(3 * 8 / (row["time_ms"] / 1e3))
    assert row["flops"] > 0 and row["flops_per_s"] == pytest.approx(row["flops"] / (row["time_ms"] / 1e3))
    assert row["params"] == sum(p.numel() for p in build_for(cell)[0].parameters())
    assert row["backend"] == "test" and row["mem_source"] == "rss_hwm"
    assert HELD_MB * 2**20 * 0.95 <= row["peak_mem_bytes"] < 4 * HELD_MB * 2**20  # the forward's held tensor
    assert row["peak_rss_bytes"] == row["peak_mem_bytes"]  # on CPU the RSS figure is the meter's
    assert row["peak_tensor_bytes"] >= HELD_MB * 2**20  # the held tensor's storage, counted exactly
    assert row["backend_reason"] == "" and row["sdpa_kernel"] == ""  # no mixer with a reason, no SDPA
    assert row["device_time_ms"] is None and row["device_time_samples_ms"] is None  # CPU: no device events
    assert row["device_mem_total_bytes"] > 0
    assert set(row) <= set(store.columns())
    assert result["env"]["threads"] == 1


def test_peak_memory_is_per_cell(write_suite, tmp_path):
    path = write_suite(
        """
        name: memory
        models:
          - {name: test-tiny, overrides: {alloc_mb: 300}}
          - {name: test-pid, overrides: {alloc_mb: 0}}
        axes: {seq_len: [8]}
        level: block
        mode: forward
        measure: {warmup: 0, repeats: 1, flops: false}
        """
    )
    df = store.load(run_suite(path, out=tmp_path / "r", progress=False, report=False)).set_index("model")
    big, small = df.loc["test-tiny", "peak_mem_bytes"], df.loc["test-pid", "peak_mem_bytes"]
    assert big >= 0.95 * 300 * 2**20  # the held tensor is seen (RSS baseline moves by a few pages)
    assert small < 100 * 2**20  # and the high-water mark was reset for the next cell
    assert df["malloc_tuned"].tolist() == [True, True]  # the worker fixed glibc's thresholds (glibc here)
    assert (df["peak_rss_bytes"] == df["peak_mem_bytes"]).all()
    assert df.loc["test-tiny", "peak_tensor_bytes"] >= 300 * 2**20 > df.loc["test-pid", "peak_tensor_bytes"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_cell_reports_allocator_peak(restore_process_limits):
    cell = _cells("block", "forward_backward", alloc_mb=0)[0].model_copy(update={"device": "cuda"})
    result = run_cell(cell, ctx=None)
    assert result["status"] == "ok", result["error"]
    (row,) = result["rows"]
    assert row["mem_source"] == "cuda_allocator" and row["peak_mem_bytes"] > 0
    assert row["peak_tensor_bytes"] > 0 and "peak_rss_bytes" not in row
    assert row["device_time_ms"] > 0 and len(row["device_time_samples_ms"]) == len(row["time_samples_ms"])
    assert 0 < row["device_mem_free_bytes"] <= row["device_mem_total_bytes"]
    assert row["cudnn_enabled"] == torch.backends.cudnn.enabled  # provenance at cell start


def test_busy_machine_warning_reads_the_load_column():
    from gam_bench.measure.environment import usable_cores
    from gam_bench.runner.runner import busy_warning

    cores = usable_cores()
    assert busy_warning([{"load_avg_1m": cores + 3.0}, {"load_avg_1m": None}]).startswith(
        "warning: the machine was busy"
    )
    assert busy_warning([{"load_avg_1m": cores * 0.5}]) is None
    assert busy_warning([{"load_avg_1m": None}]) is None


def _model_cell(model, level="block", mode="forward_backward", dtype="float32", flops=True, **overrides):
    suite = suite_from_dict(
        {
            "name": "m",
            "plugins": ["faulty_models"],
            "models": [{"name": model, "overrides": {"d_model": 16, "dropout": 0.0, **overrides}}],
            "axes": {"seq_len": [32], "batch_size": [2]},
            "level": level,
            "mode": mode,
            "dtype": dtype,
            "device": "cpu",
            "measure": {"warmup": 0, "repeats": 1, "flops": flops},
        }
    )
    return expand(suite, "cpu", threads=1)[0]


@pytest.mark.parametrize(
    ("model", "level", "mode"),
    [("transformer-naive", "block", "forward_backward"), ("gam", "lm", "train_step"), ("mamba", "block", "forward")],
)
def test_peak_tensor_bytes_is_deterministic_and_independent_of_flops(model, level, mode):
    overrides = {"n_layers": 1} if level == "lm" else {}
    first = throughput.run(_model_cell(model, level, mode, **overrides))[0]
    again = throughput.run(_model_cell(model, level, mode, **overrides))[0]
    uncounted = throughput.run(_model_cell(model, level, mode, flops=False, **overrides))[0]
    assert first["peak_tensor_bytes"] == again["peak_tensor_bytes"] == uncounted["peak_tensor_bytes"] > 0
    assert first["flops"] == again["flops"] > 0 and uncounted["flops"] is None
    assert first["peak_tensor_bytes"] >= first["params"] * 4  # the float32 weights are live throughout


def test_sdpa_kernel_is_recorded_for_the_transformer():
    sdpa = throughput.run(_model_cell("transformer", mode="forward", n_heads=2))[0]
    naive = throughput.run(_model_cell("transformer-naive", mode="forward", n_heads=2))[0]
    assert sdpa["backend"] == "sdpa" and sdpa["sdpa_kernel"] == "flash_cpu"  # CPU's fused kernel, no dropout
    assert naive["sdpa_kernel"] == ""  # naive attention never calls SDPA


@pytest.mark.parametrize(
    ("backend", "path", "reason"),
    [
        ("auto", "cpu-fused-scan", "cpu-fused-scan: inputs on cpu (mamba-ssm kernels are CUDA-only)"),
        ("torch", "torch-chunked-scan", "torch-chunked-scan: backend 'torch' requested"),
        ("cpu-fused", "cpu-fused-scan", "cpu-fused-scan: backend 'cpu-fused' requested"),
    ],
)
def test_backend_reason_is_recorded_for_mamba(backend, path, reason):
    from gam_bench.models import cpu_scan

    if path == "cpu-fused-scan" and not cpu_scan.available():
        pytest.skip(f"the fused CPU scan cannot build here: {cpu_scan.unavailable_reason()}")
    row = throughput.run(_model_cell("mamba", mode="forward", backend=backend))[0]
    assert row["backend"] == path and row["backend_reason"] == reason


def test_flops_are_none_for_a_backend_the_counter_cannot_see(monkeypatch):
    """mamba-ssm's kernels run outside the dispatcher: no partial count, but the tensor peak stays."""
    from gam_bench.models.mamba import MambaMixer

    monkeypatch.setattr(MambaMixer, "backend", property(lambda self: "mamba-ssm-fused"))
    row = throughput.run(_model_cell("mamba", mode="forward"))[0]
    assert row["backend"] == "mamba-ssm-fused"
    assert row["flops"] is None and row["flops_per_s"] is None and row["peak_tensor_bytes"] > 0


class _SpyScaler(torch.amp.GradScaler):
    """A real float16 GradScaler that records which of its methods the step called."""

    def __init__(self) -> None:
        super().__init__("cpu")
        self.calls: list[str] = []

    def scale(self, outputs):
        self.calls.append("scale")
        return super().scale(outputs)

    def unscale_(self, optimizer):
        self.calls.append("unscale_")
        return super().unscale_(optimizer)

    def step(self, optimizer, *args, **kwargs):
        self.calls.append("step")
        return super().step(optimizer, *args, **kwargs)

    def update(self, new_scale=None):
        self.calls.append("update")
        return super().update(new_scale)


@pytest.mark.parametrize("level", ["block", "lm"])
@pytest.mark.parametrize(
    ("mode", "calls"),
    [("forward_backward", ["scale"]), ("train_step", None)],
)
def test_float16_steps_go_through_the_grad_scaler(monkeypatch, level, mode, calls):
    scalers: list[_SpyScaler] = []

    def make_scaler(dtype, device):
        assert dtype == "float16" and device == "cpu"
        scalers.append(_SpyScaler())
        return scalers[-1]

    monkeypatch.setattr(throughput.lm_step, "make_scaler", make_scaler)
    cell = _model_cell("test-tiny", level, mode, dtype="float16")
    module, config = build_for(cell)
    throughput.make_step(cell, module, config)()
    (scaler,) = scalers
    if calls is None:  # the block step does not clip, so scaler.step unscales inside (no unscale_ first)
        calls = ["scale", "unscale_", "step", "update"] if level == "lm" else ["scale", "step", "unscale_", "update"]
    assert scaler.calls == calls


def test_float16_forward_backward_gradients_are_scaled_and_non_zero():
    """The throughput fwd+bwd step in float16 backpropagates the scaled loss: every gradient is
    2**16 times the unscaled one (up to float16 rounding of the unscaled one's small elements)
    and none is all zero."""
    cell = _model_cell("gam", dtype="float16", num_memory_slots=8)
    grads = {}
    for scaled in (True, False):
        torch.manual_seed(0)
        module, config = build_for(cell)
        torch.manual_seed(1)
        x = torch.randn(2, 32, config.d_model)  # (B, T, D)
        if not scaled:
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(throughput.lm_step, "make_scaler", lambda dtype, device: None)
                step = throughput._block_step(cell, module, x)
        else:
            step = throughput._block_step(cell, module, x)
        step()
        grads[scaled] = [x.grad] + [p.grad for p in module.parameters() if p.grad is not None]
    assert len(grads[True]) == len(grads[False]) > 1
    for with_scaler, without in zip(grads[True], grads[False]):
        assert torch.count_nonzero(with_scaler) > 0
        # norm-wise: the unscaled gradients' smallest elements sit in float16's subnormal range
        diff = (with_scaler / 2.0**16 - without).abs().max() / without.abs().max()
        assert diff < 1e-2


@pytest.mark.parametrize(
    ("warmup", "compiled", "expected"), [(3, False, 1 + 2 + 4), (0, False, 1 + 0 + 4), (3, True, 1 + 3 + 4)]
)
def test_an_eager_cells_counted_step_is_its_first_warmup_step(monkeypatch, warmup, compiled, expected):
    """Eager: the counted step runs the timed step itself, so warmup - 1 more follow; a compiled
    (or graphed) cell's counted step is the eager one, so all its warm-up steps still run."""
    from gam_bench import execution

    calls = {"eager": 0, "compiled": 0}
    real_make_step = throughput.make_step

    def make_step(cell, module, config):
        step = real_make_step(cell, module, config)
        kind = "compiled" if getattr(module, "fake_compiled", False) else "eager"

        def counted():
            calls[kind] += 1
            step()

        return counted

    def fake_prepare(cell, module, build_step, inputs, cuda=None):
        columns = execution.execution_columns(cell)
        eager = build_step(module)
        if not compiled:
            return execution.Execution(eager, eager, columns)
        module.fake_compiled = True
        return execution.Execution(build_step(module), eager, columns)

    monkeypatch.setattr(throughput, "make_step", make_step)
    monkeypatch.setattr(execution, "prepare", fake_prepare)
    cell = _model_cell("gam")
    cell = cell.model_copy(update={"measure": cell.measure.model_copy(update={"warmup": warmup, "repeats": 4})})
    (row,) = throughput.run(cell)
    assert len(row["time_samples_ms"]) == 4
    assert calls["eager"] + calls["compiled"] == expected
    assert calls["eager"] == (1 if compiled else expected)
