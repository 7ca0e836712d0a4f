"""Execution modes of decode cells: compiled prefill/decode, CUDA-graph decode steps, load-time refusals.

Inductor work stays small: three compiling tests (a GAM block decoding, a Transformer block
prefilling and decoding, a 2-layer GAM LM doing both) at d_model 16 and a 16-token context. CUDA graphs run through
`fake_cuda.ReplayingCuda`, whose replays re-run the captured aten ops on the captured
tensors, so a replayed decode step's numbers are checked against eager, not just its calls.
"""

from __future__ import annotations

import copy

import pytest
import torch
from fake_cuda import FakeCuda, ReplayingCuda

from gam_bench import execution
from gam_bench.cell import Cell, expand
from gam_bench.errors import UserError
from gam_bench.execution import decode as decode_execution
from gam_bench.models import registry
from gam_bench.models.builder import build_for
from gam_bench.models.decode import copy_state_, state_grows
from gam_bench.runner.preflight import preflight
from gam_bench.settings import Limits, Measure
from gam_bench.suite import suite_from_dict
from gam_bench.tasks.decode import measure as decode
from gam_bench.tasks.decode.settings import DecodeSettings

D, N, G = 16, 16, 4


def _cell(**fields) -> Cell:
    base = dict(task="decode", model="gam", overrides={"d_model": D}, level="block", mode="decode")
    base.update(dtype="float32", device="cpu", batch_size=1, seq_len=N, seed=0, threads=1, plugins=[])
    base.update(measure=Measure(warmup=2, repeats=3), limits=Limits(), settings=DecodeSettings(decode_tokens=G))
    return Cell(**{**base, **fields})


# --- compile -----------------------------------------------------------------------------------


def test_compiled_decode_cell_compiles_before_timing_matches_eager_and_never_recompiles():
    (row,) = decode.run(_cell(compile="default"))
    assert row["compile"] == "default" and row["compile_s"] > 0
    assert row["recompiles"] == 0  # the compiling calls covered both state layouts
    assert row["parity_ok"] is True and row["max_rel_err"] < 1e-5 and row["parity_note"] is None
    assert len(row["decode_samples_ms"]) == G and row["prefill_ms"] is None


def test_a_growing_kv_cache_compiles_once_with_a_dynamic_length():
    """dynamic=False would compile every decode step again (a new cache length each time)."""
    (row,) = decode.run(
        _cell(model="transformer", overrides={"d_model": D, "n_heads": 2}, mode="both", compile="default")
    )
    assert row["recompiles"] == 0 and row["parity_ok"] is True
    assert row["prefill_ms"] > 0 and len(row["decode_samples_ms"]) == G


def test_a_compiled_lm_decodes_with_a_host_int_position_and_never_recompiles():
    """The LM's position is a Python int that grows each step: automatic dynamic makes it symbolic."""
    overrides = {"d_model": D, "n_layers": 2, "vocab_size": 64}
    (row,) = decode.run(_cell(level="lm", overrides=overrides, mode="both", compile="default"))
    assert row["recompiles"] == 0 and row["parity_ok"] is True and row["max_rel_err"] < 1e-5


def test_an_eager_decode_cell_has_no_compile_figures():
    (row,) = decode.run(_cell())
    assert (row["compile"], row["compile_s"], row["recompiles"], row["max_rel_err"]) == ("eager", None, None, None)


def _fake_compile(calls: list, perturb: float = 0.0, fail: bool = False):
    """Stands in for torch.compile: checks the arguments as torch does, returns the function (perturbed)."""

    def compile(fn, *, mode=None, backend="inductor", dynamic=None, **kwargs):
        assert callable(fn), f"torch.compile needs a callable, got {fn!r}"
        assert mode in (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"), mode
        assert backend == "inductor" and dynamic in (None, True, False) and not kwargs
        calls.append((fn.__name__, mode, dynamic))

        def compiled(*args, **kw):
            if fail:
                from torch._dynamo.exc import Unsupported

                raise Unsupported("fake: cannot trace")
            out, state = fn(*args, **kw)
            return out + perturb, state

        return compiled

    return compile


def test_only_what_the_cell_times_is_compiled_and_decode_gets_dynamic_shapes(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "compile", _fake_compile(calls))
    for mode, expected in [
        ("decode", [("decode", "default", None)]),
        ("prefill", [("<lambda>", "default", False)]),
        ("both", [("<lambda>", "default", False), ("decode", "default", None)]),
    ]:
        calls.clear()
        (row,) = decode.run(_cell(mode=mode, compile="default", settings=DecodeSettings(decode_tokens=G)))
        assert calls == expected, mode
        assert row["parity_ok"] is True and row["max_rel_err"] == 0.0


def test_a_compiled_decode_that_disagrees_with_eager_says_so(monkeypatch):
    monkeypatch.setattr(torch, "compile", _fake_compile([], perturb=1.0))
    (row,) = decode.run(_cell(compile="default"))
    assert row["parity_ok"] is False and row["max_rel_err"] > 1e-4
    assert row["parity_note"].startswith("max_rel_err ") and "> tol 0.0001 (float32)" in row["parity_note"]


def test_a_compile_failure_is_a_compile_error_naming_the_mode(monkeypatch):
    monkeypatch.setattr(torch, "compile", _fake_compile([], fail=True))
    with pytest.raises(execution.CompileError, match=r"torch.compile\(mode='max-autotune'\) failed: Unsupported: fake"):
        decode.run(_cell(compile="max-autotune"))


# --- CUDA graphs (fake) ------------------------------------------------------------------------


def _block(name: str, **overrides):
    torch.manual_seed(0)
    return registry.build_block(name, d_model=D, **overrides).eval()


@pytest.mark.parametrize("name", ["gam", "mamba", "gam-local-only"])
def test_replayed_decode_steps_match_eager_decode_token_by_token(name):
    block = _block(name)
    x = torch.randn(1, N + G, D)  # (B, N+G, D)
    with torch.inference_mode():
        _, state = block.prefill(x[:, :N])
    cuda = ReplayingCuda()
    graph = decode_execution.GraphDecode(block.decode, state, x[:, N : N + 1], cuda=cuda)
    eager_state = copy.deepcopy(state)
    graphed = graph.adopt(state)
    for t in range(N, N + G):
        with torch.inference_mode():
            expected, eager_state = block.decode(x[:, t : t + 1], eager_state)
        out, graphed = graph(x[:, t : t + 1], graphed)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
        assert graphed is graph.state  # the static buffers, advanced in place
    for a, e in zip(graphed.tensors(), eager_state.tensors()):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-6)
    assert [e for e in FakeCuda.log if e == ("replay",)] == [("replay",)] * G


def test_a_graph_decode_cell_times_replays_and_checks_them_against_eager():
    cuda = ReplayingCuda()
    cell = _cell(model="mamba", cuda_graph=True, mode="both")
    module, config = build_for(cell)  # max_seq_len = N + G (Decode.model_needs)
    columns = decode.measure_decode(
        module,
        level="block",
        width=D,
        batch_size=1,
        context_len=N,
        decode_tokens=G,
        device="cpu",
        mode="both",
        warmup=1,
        repeats=2,
        execute=lambda x: decode_execution.prepare_decode(cell, module, x, N, cuda=cuda),
    )
    assert columns["cuda_graph"] is True and columns["compile_s"] is None
    assert columns["parity_ok"] is True and columns["max_rel_err"] < 1e-5
    replays = sum(1 for e in FakeCuda.log if e == ("replay",))
    assert replays == 2 + 1 + G  # parity (2 steps), warmup (min(warmup, G) = 1), the G timed steps
    assert len(columns["decode_samples_ms"]) == G and columns["state_bytes"] == columns["state_bytes_final"]


def test_a_state_that_grows_cannot_be_captured():
    block = _block("transformer", n_heads=2)
    x = torch.randn(1, N + 1, D)  # (B, N+1, D)
    with torch.inference_mode():
        _, cache = block.prefill(x[:, :N])
    with pytest.raises(decode_execution.GraphCaptureError, match=r"KVCache.k changed from \(1, 2, 16, 8\)"):
        decode_execution.GraphDecode(block.decode, cache, x[:, N:], cuda=FakeCuda())


def test_copy_state_refuses_a_changed_host_value_and_copies_tensors_in_place():
    from gam_bench.models.decode import LMState
    from gam_bench.models.gam import GAMState

    dst = LMState(3, [GAMState(torch.zeros(1, 2, 4))])
    src = LMState(3, [GAMState(torch.ones(1, 2, 4))])
    window = dst.layers[0].window
    assert copy_state_(dst, src) is dst and dst.layers[0].window is window and window.sum() == 8
    with pytest.raises(ValueError, match=r"LMState.position changed from 3 to 4"):
        copy_state_(dst, LMState(4, src.layers))


# --- refused at load time ----------------------------------------------------------------------


def _preflight(**fields):
    """pre-flight of a decode suite, as `gam-bench run` does after resolving the device (not resolved here)."""
    body = {"name": "d", "task": "decode", "models": ["gam"], "axes": {"seq_len": [64], "d_model": D}, "device": "cuda"}
    suite = suite_from_dict({**body, **fields})
    device = suite.base.device
    return preflight(suite.for_device(device), expand(suite, device, threads=1), "d.yaml")


def test_block_models_say_whether_their_decode_state_grows():
    assert [state_grows(registry.get_spec(m)) for m in ("gam", "mamba", "transformer", "transformer-naive")] == [
        False,
        False,
        True,
        True,
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"models": ["transformer"]}, "cannot capture model 'transformer''s decode step: its state grows by one"),
        ({"level": "lm"}, "decodes at level block only: an LM's state keeps its position as a host int"),
        ({"mode": "prefill"}, "(decode modes decode and both), not mode 'prefill'"),
    ],
)
def test_graph_decode_cells_that_cannot_be_captured_are_refused(fields, message):
    with pytest.raises(UserError, match=r"^d.yaml: cuda_graph: true ") as info:
        _preflight(cuda_graph=True, **fields)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_graph_and_compiled_decode_cells_pass_preflight():
    assert [c.cuda_graph for c in _preflight(cuda_graph=True, models=["gam", "mamba"])] == [True, True]
    assert {c.compile for c in _preflight(compile=["default", "max-autotune"], device="cpu")} == {
        "default",
        "max-autotune",
    }


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["gam", "mamba"])
def test_real_cuda_graph_decode_matches_eager_decode(name):
    block = _block(name).cuda()
    x = torch.randn(2, N + G, D, device="cuda")  # (B, N+G, D)
    with torch.inference_mode():
        _, state = block.prefill(x[:, :N])
    graph = decode_execution.GraphDecode(block.decode, state, x[:, N : N + 1])
    eager_state, graphed = copy.deepcopy(state), graph.adopt(state)
    for t in range(N, N + G):
        with torch.inference_mode():
            expected, eager_state = block.decode(x[:, t : t + 1], eager_state)
        out, graphed = graph(x[:, t : t + 1], graphed)
        torch.cuda.synchronize()
        torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
