"""Execution modes: load-time validation, compile + parity (inductor's C++ backend on this CPU),
recompile counting, compile failures, and CUDA-graph capture (a fake on CPU, the real one on CUDA).

Inductor compiles cost seconds each on a small shared CPU. The default run compiles three
blocks (GAM, Transformer SDPA, Mamba: its chunked scan stays eager, a graph break)
forward+backward once each at d_model 32, T 16 (~20-45 s in all, most of it inductor's
one-time start-up). Transformer naive (~7-23 s) is `slow` and runs only with
GAM_BENCH_COMPILE_TESTS=all.
"""

from __future__ import annotations

import os

import pytest
import torch
from fake_cuda import FakeCuda

from gam_bench import execution
from gam_bench.errors import UserError
from gam_bench.models import registry

ALL_COMPILE_TESTS = os.environ.get("GAM_BENCH_COMPILE_TESTS") == "all"


def _block(name: str, d_model: int = 32, seq_len: int = 16) -> torch.nn.Module:
    fields = registry.get_spec(name).config_cls.model_fields
    extra = {k: v for k, v in (("max_seq_len", seq_len), ("dropout", 0.0)) if k in fields}
    torch.manual_seed(0)
    return registry.build_block(name, d_model=d_model, **extra)


# --- load-time validation -------------------------------------------------------------------


def test_validation_accepts_the_plain_modes():
    for mode in ("eager", "default", "max-autotune"):
        execution.validate_execution(mode, False, "cpu", "forward_backward", "s.yaml: entry 0")
    execution.validate_execution("eager", True, "cuda", "forward", "s.yaml: entry 0")
    execution.validate_execution("default", True, "cuda:1", "decode", "s.yaml: entry 0")


@pytest.mark.parametrize(
    ("compile", "cuda_graph", "device", "mode", "message"),
    [
        ("eager", True, "cpu", "forward", "cuda_graph: true needs a CUDA device (device: 'cpu')"),
        ("eager", True, "mps", "decode", "cuda_graph: true needs a CUDA device (device: 'mps')"),
        ("eager", True, "cuda", "forward_backward", "captures forward steps (throughput) and decode steps"),
        ("eager", True, "cuda", "prefill", "(decode modes decode and both), not mode 'prefill'"),
        ("reduce-overhead", True, "cuda", "forward", "that mode captures CUDA graphs itself"),
        ("reduce-overhead", False, "cpu", "forward", "'reduce-overhead' is inductor with CUDA graphs"),
        ("max-autotun", False, "cpu", "forward", "Did you mean 'max-autotune'?"),
    ],
)
def test_validation_refuses_bad_combinations(compile, cuda_graph, device, mode, message):
    with pytest.raises(UserError, match="^s.yaml: entry 0: ") as info:
        execution.validate_execution(compile, cuda_graph, device, mode, "s.yaml: entry 0")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


# --- parity: the check itself (no inductor) -------------------------------------------------


def test_parity_detects_a_wrong_forward_and_a_wrong_gradient():
    torch.manual_seed(0)
    eager = torch.nn.Linear(8, 8)
    x = torch.randn(2, 4, 8)  # (B, T, D)
    good = execution.check_parity(eager, eager, [x], dtype="float32", train=True)
    assert good.ok is True and good.max_rel_err == 0.0

    shifted = lambda inp: eager(inp) * (1 + 1e-3)
    bad = execution.check_parity(eager, shifted, [x], dtype="float32", train=False)
    assert bad.ok is False and bad.max_rel_err == pytest.approx(1e-3, rel=1e-3)
    assert "> tol 0.0001 (float32)" in bad.note
    assert execution.check_parity(eager, shifted, [x], dtype="bfloat16", train=False).ok is True

    # Same forward values, wrong gradient: only the train comparison sees it.
    wrong_grad = lambda inp: eager(inp).detach() + 0 * inp.sum() + (eager(inp) - eager(inp).detach()) * 2
    assert execution.check_parity(eager, wrong_grad, [x], dtype="float32", train=False).ok is True
    caught = execution.check_parity(eager, wrong_grad, [x], dtype="float32", train=True)
    assert caught.ok is False and caught.max_rel_err == pytest.approx(1.0)


def test_parity_leaves_grads_and_weights_alone():
    torch.manual_seed(0)
    eager = torch.nn.Linear(8, 8)
    before = [p.detach().clone() for p in eager.parameters()]
    execution.check_parity(eager, eager, [torch.randn(2, 8)], dtype="float32", train=True)
    assert all(p.grad is None for p in eager.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, eager.parameters()))


def test_parity_with_active_dropout_is_not_comparable():
    block = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Dropout(0.1)).train()
    result = execution.check_parity(block, block, [torch.randn(2, 8)], dtype="float32", train=True)
    assert result.ok is None and result.max_rel_err is None and "dropout" in result.note
    assert execution.check_parity(block.eval(), block, [torch.randn(2, 8)], dtype="float32", train=False).ok


def test_rel_err_is_normwise():
    expected = torch.tensor([1.0, 0.0, -2.0])
    assert execution.rel_err(torch.tensor([1.0, 1e-3, -2.0]), expected) == pytest.approx(5e-4)


# --- compile bookkeeping (dynamo with backend="eager": no inductor, fast) -------------------


def test_recompile_counter_counts_a_guard_failure_and_not_a_warm_call():
    fn = torch.compile(lambda t: t * 2 + 1, backend="eager", dynamic=False)
    fn(torch.ones(3))
    with execution.RecompileCounter() as warm:
        fn(torch.ones(3))
    assert warm.recompiles == 0
    with execution.RecompileCounter() as cold:
        fn(torch.ones(5))  # new static shape: the guard fails, dynamo compiles again
    assert cold.recompiles == 1 and cold.graphs == 1


def test_compile_failure_is_a_compile_error_with_the_reason():
    def broken_backend(gm, example_inputs):
        raise RuntimeError("the backend cannot lower this")

    step = torch.compile(lambda: torch.ones(2).sin(), backend=broken_backend)
    with pytest.raises(execution.CompileError, match="the backend cannot lower this") as info:
        execution.compile_step(step, "default")
    assert info.value.mode == "default" and info.value.reason.startswith("BackendCompilerFailed")


def test_a_failure_of_the_step_itself_is_not_a_compile_error():
    def step():
        raise MemoryError("out of memory")

    with pytest.raises(MemoryError):
        execution.compile_step(step, "default")


def test_eager_is_not_compiled_and_costs_nothing():
    module = torch.nn.Linear(2, 2)
    assert execution.compile_module(module, "eager") is module
    calls = []
    assert execution.compile_step(lambda: calls.append(1), "eager") == 0.0 and calls == []
    with pytest.raises(ValueError, match="unknown compile mode"):
        execution.compile_module(module, "fast")


# --- inductor (C++ backend) parity of the real blocks ---------------------------------------


def _inductor_parity(name: str) -> None:
    block = _block(name).train()
    compiled = execution.compile_module(block, "default")
    assert compiled is not block and list(compiled.parameters())[0] is list(block.parameters())[0]
    x = torch.randn(2, 16, 32, requires_grad=True)  # (B, T, D)

    def step() -> None:
        block.zero_grad(set_to_none=True)
        x.grad = None
        compiled(x).float().mean().backward()  # (B, T, D) -> scalar

    compile_s = execution.compile_step(step, "default")
    assert compile_s > 0
    result = execution.check_parity(block, compiled, [x], dtype="float32", train=True)
    assert result.ok is True, result
    assert result.max_rel_err < 1e-5
    with execution.RecompileCounter() as counter:
        step()
        step()
    assert counter.recompiles == 0


@pytest.mark.parametrize("name", ["gam", "transformer", "mamba"])
def test_inductor_matches_eager_forward_and_backward(name):
    _inductor_parity(name)


@pytest.mark.slow
@pytest.mark.skipif(not ALL_COMPILE_TESTS, reason="long inductor compile; set GAM_BENCH_COMPILE_TESTS=all")
@pytest.mark.parametrize("name", ["transformer-naive"])
def test_inductor_matches_eager_slow_compiles(name):
    _inductor_parity(name)


# --- CUDA graphs ----------------------------------------------------------------------------


def test_capture_warms_up_on_a_side_stream_then_captures_one_step():
    cuda = FakeCuda()
    calls = []
    step = lambda: calls.append((cuda.current.name, cuda.capturing))
    replay = execution.capture_cuda_graph(step, warmup=2, cuda=cuda)
    assert calls == [("side", False), ("side", False), ("capture", True)]
    assert FakeCuda.log == [
        ("wait", "side", "default"),
        ("wait", "default", "side"),
        ("capture_begin",),
        ("capture_end",),
        ("sync",),
    ]
    replay()
    replay()
    assert FakeCuda.log[-2:] == [("replay",), ("replay",)] and len(calls) == 3  # replays run no Python


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_replay_matches_eager_forward():
    block = _block("gam").cuda().eval()
    x = torch.randn(2, 16, 32, device="cuda")  # (B, T, D) static input
    out = torch.empty(2, 16, 32, device="cuda")  # (B, T, D) static output

    def step() -> None:
        with torch.no_grad():
            out.copy_(block(x))

    replay = execution.capture_cuda_graph(step)
    x.copy_(torch.randn_like(x))
    replay()
    torch.cuda.synchronize()
    with torch.no_grad():
        expected = block(x)
    torch.testing.assert_close(out, expected)


# --- prepare: what a task gets (cells from tests/runner/cells.py style, built inline) ----------


def _cell(**fields):
    from gam_bench.cell import Cell
    from gam_bench.settings import Limits, Measure

    base = dict(task="throughput", model="gam", overrides={}, level="block", mode="forward", dtype="float32")
    base.update(device="cpu", batch_size=1, seq_len=4, seed=0, threads=1, measure=Measure(), limits=Limits())
    return Cell(**{**base, "plugins": [], **fields})


def test_compile_modes_are_the_suite_values():
    from typing import get_args

    from gam_bench.settings import Compile

    assert execution.COMPILE_MODES == get_args(Compile) == ("eager", "default", "reduce-overhead", "max-autotune")


def test_compile_and_cuda_graph_are_refused_for_a_task_that_ignores_them():
    from gam_bench.runner.preflight import check_capabilities
    from gam_bench.tasks import get_task

    def check_task(task, compile, cuda_graph, where):
        check_capabilities(get_task(task), compile, cuda_graph, 1, where)

    check_task("throughput", "default", False, "s.yaml")
    check_task("decode", "max-autotune", True, "s.yaml")
    check_task("perplexity", "eager", False, "s.yaml")
    with pytest.raises(UserError, match=r"^s.yaml: compile: max-autotune is for throughput and decode cells; task 'p"):
        check_task("perplexity", "max-autotune", False, "s.yaml")
    with pytest.raises(UserError, match=r"^s.yaml: cuda_graph: true is for throughput and decode cells; task 'rec"):
        check_task("recall", "eager", True, "s.yaml")


def test_prepare_eager_builds_one_step_and_reports_no_compile():
    built = []
    module = torch.nn.Linear(4, 4)

    def build(m):
        built.append(m)
        return lambda: None

    ex = execution.prepare(_cell(), module, build, inputs=lambda: pytest.fail("eager needs no parity inputs"))
    assert built == [module] and ex.step is ex.counted
    assert ex.columns == dict(
        compile="eager", cuda_graph=False, compile_s=None, recompiles=None, max_rel_err=None, parity_ok=None
    ) | {"parity_note": None}
    with ex.counting():
        pass
    assert ex.columns["recompiles"] is None


def test_prepare_cuda_graph_times_the_replay_and_checks_its_forward():
    """CPU: the fake torch.cuda of the capture test; the real capture is tested on CUDA above."""
    cuda = FakeCuda()
    module = torch.nn.Linear(4, 4).eval()
    x = torch.randn(1, 3, 4)  # (B, T, D)
    calls = []

    def build(m):
        assert m is module  # eager + cuda_graph: nothing is compiled
        return lambda: calls.append(m(x))

    ex = execution.prepare(_cell(cuda_graph=True), module, build, inputs=lambda: [x], cuda=cuda)
    assert len(calls) == 4  # 3 warmup calls on the side stream + 1 captured
    ex.step()
    assert len(calls) == 4 and FakeCuda.log[-1] == ("replay",)  # the timed step is the replay
    assert ex.counted is not ex.step
    assert ex.columns["cuda_graph"] is True and ex.columns["compile_s"] is None
    assert ex.columns["parity_ok"] is True and ex.columns["max_rel_err"] == 0.0
