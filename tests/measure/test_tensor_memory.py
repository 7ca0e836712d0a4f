"""TensorMemory: exact bytes for known allocation patterns, views/in-place counted once,
identical runs (also in fresh processes) give identical peaks, naive attention's O(T^2),
nesting with FlopCounterMode in either order, autocast bfloat16 on the CPU."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from gam_bench.measure.counted_step import count_step
from gam_bench.measure.flops import count_flops
from gam_bench.measure.tensor_memory import TensorMemory, tensors_of
from gam_bench.models import registry

F32 = 4
REPO = Path(__file__).resolve().parents[2]


def _block_step(name: str, T: int, dtype: torch.dtype | None = None, **overrides):
    torch.manual_seed(0)
    block = registry.build_block(name, d_model=64, max_seq_len=T, dropout=0.0, **overrides)
    block.train()
    x = torch.randn(1, T, 64, requires_grad=True)  # (B, T, D)

    def step() -> None:
        block.zero_grad(set_to_none=True)
        x.grad = None
        with torch.autocast("cpu", dtype=dtype) if dtype else torch.autocast("cpu", enabled=False):
            loss = block(x).float().mean()  # (B, T, D) -> scalar
        loss.backward()

    return step


def test_known_allocation_pattern_gives_exact_peak():
    with TensorMemory("cpu", roots=()) as tm:
        a = torch.empty(1000)  # 4000 B
        b = torch.empty(2000)  # 8000 B
        c = torch.empty(500)  # 2000 B -> 14000 live
        del b  # 6000 live
        d = torch.empty(3000)  # 12000 B -> 18000 live: the peak
        assert tm.current_bytes == 18000
        del a, c, d
        assert tm.current_bytes == 0
    assert tm.entry_bytes == 0
    assert tm.peak_bytes == 18000


def test_live_tensors_at_entry_count_and_their_frees_are_seen():
    x = torch.empty(256)  # 1024 B, live before entry
    layer = torch.nn.Linear(8, 4)  # 32 + 4 floats = 144 B
    with TensorMemory("cpu", roots=(x, layer)) as tm:
        y = torch.empty(100)  # 400 B
        del x
        assert tm.current_bytes == 144 + 400
    assert tm.entry_bytes == 1024 + 144
    assert tm.peak_bytes == 1024 + 144 + 400
    del y


def test_views_and_in_place_ops_are_not_double_counted():
    with TensorMemory("cpu", roots=()) as tm:
        a = torch.zeros(64, 64)  # 16384 B
        v = a.view(-1)[::2].reshape(32, 64).t()  # views: same storage
        a.add_(1.0).mul_(2.0)
        a[0].fill_(3.0)
        torch.add(a, 1.0, out=a)
        assert tm.current_bytes == 64 * 64 * F32
        del a
        assert tm.current_bytes == 64 * 64 * F32  # the view keeps the storage alive
        del v
        assert tm.current_bytes == 0
    assert tm.peak_bytes == 64 * 64 * F32


def test_storage_resized_in_place_is_re_read():
    with TensorMemory("cpu", roots=()) as tm:
        out = torch.empty(0)
        torch.mul(torch.ones(100), 2.0, out=out)  # out resized to 400 B; the ones (400 B) die after
        assert tm.current_bytes == 400
    assert tm.peak_bytes == 800


def test_gradients_and_optimizer_state_are_reached_from_the_step_closure():
    layer = torch.nn.Linear(16, 16)  # 272 floats
    opt = torch.optim.AdamW(layer.parameters())
    x = torch.randn(4, 16)  # 64 floats
    layer(x).sum().backward()
    opt.step()  # exp_avg, exp_avg_sq (272 floats each) and 2 step counters (4 B each)

    def step() -> None:
        opt.step()

    roots = {id(t.untyped_storage()) for t in tensors_of(step)}
    assert id(layer.weight.grad.untyped_storage()) in roots
    with TensorMemory("cpu", roots=(step, x)) as tm:
        pass
    assert tm.entry_bytes == (272 * 4 + 64) * F32 + 2 * 4  # params + grads + 2 Adam moments + x + steps


def test_identical_runs_give_identical_peaks():
    first = count_step(_block_step("transformer-naive", 256, n_heads=1), flops=False)
    second = count_step(_block_step("transformer-naive", 256, n_heads=1), flops=False)
    assert first.peak_tensor_bytes == second.peak_tensor_bytes > 256 * 256 * F32
    assert first.flops is None


_CHILD = (
    "import torch; from tests.measure.test_tensor_memory import _block_step; "
    "from gam_bench.measure.counted_step import count_step; "
    "print(count_step(_block_step('gam', 128), flops=False).peak_tensor_bytes)"
)


def test_identical_runs_in_fresh_processes_give_identical_peaks():
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    children = [
        subprocess.Popen([sys.executable, "-c", _CHILD], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [child.communicate(timeout=120)[0].split() for child in children]
    assert all(child.returncode == 0 for child in children)
    here = [str(count_step(_block_step("gam", 128), flops=False).peak_tensor_bytes)]
    assert outputs[0] == outputs[1] == here


def test_gc_scan_agrees_with_the_closure_roots_on_a_block_step():
    step = _block_step("gam", 128)
    step()  # leave grads in place so that both seeds must find them
    with TensorMemory("cpu", roots=(step,)) as by_roots:
        step()
    with TensorMemory("cpu", roots=None) as by_scan:
        step()
    # The scan also sees every other tensor alive in the process (at least as much).
    assert by_scan.entry_bytes >= by_roots.entry_bytes > 0
    assert by_scan.step_peak_bytes == by_roots.step_peak_bytes


def test_naive_attention_peak_grows_quadratically():
    steps = {T: _block_step("transformer-naive", T, n_heads=1) for T in (512, 2048)}
    peaks = {T: count_step(step, flops=False).peak_tensor_bytes for T, step in steps.items()}
    slope = math.log(peaks[2048] / peaks[512]) / math.log(4)
    # Measured 1.82 (4.46 MiB -> 55.8 MiB); 1k -> 4k gives 1.92. The T x T scores saved for backward dominate.
    assert 1.7 < slope < 2.05, (peaks, slope)
    assert peaks[2048] > 3 * 2048 * 2048 * F32  # scores, probabilities and their gradient coexist


def test_nesting_with_the_flop_counter_in_either_order_agrees():
    step = _block_step("transformer-naive", 128, n_heads=1)
    alone = count_flops(step)
    with TensorMemory("cpu", roots=(step,)) as inner_first:
        step()
    flops_outer = FlopCounterMode(display=False)
    with flops_outer, TensorMemory("cpu", roots=(step,)) as mem_inner:
        step()
    flops_inner = FlopCounterMode(display=False)
    with TensorMemory("cpu", roots=(step,)) as mem_outer, flops_inner:
        step()
    assert flops_outer.get_total_flops() == flops_inner.get_total_flops() == alone > 0
    assert mem_inner.peak_bytes == mem_outer.peak_bytes == inner_first.peak_bytes
    assert count_step(step, flops=True).flops == alone


def test_autocast_bfloat16_on_cpu_is_tracked_and_deterministic():
    steps = [_block_step("transformer-naive", 256, torch.bfloat16, n_heads=1) for _ in range(2)]
    peaks = [count_step(step, flops=False) for step in steps]
    fp32 = count_step(_block_step("transformer-naive", 256, n_heads=1), flops=False)
    assert peaks[0] == peaks[1]
    # bf16 activations (2 B) shrink the T x T terms; the autocast weight copies are counted too.
    assert 256 * 256 * 2 < peaks[0].peak_tensor_bytes < fp32.peak_tensor_bytes


def test_device_filter_ignores_other_devices():
    with TensorMemory("meta", roots=()) as tm:
        keep = torch.empty(1000)  # CPU: ignored
        meta = torch.empty(10, device="meta")  # 40 B on meta
    assert tm.peak_bytes == 40
    del keep, meta


def test_agrees_with_torch_mem_tracker_on_a_block_step():
    """The reference twin: torch's own MemTracker (dispatch mode + module hooks) on the CPU."""
    from torch.distributed._tools.mem_tracker import MemTracker

    step = _block_step("gam", 128)
    cells = [cell.cell_contents for cell in step.__closure__]
    block = next(c for c in cells if isinstance(c, torch.nn.Module))
    x = next(c for c in cells if isinstance(c, torch.Tensor))
    mine = count_step(step, flops=False).peak_tensor_bytes
    tracker = MemTracker()
    tracker.track_external(block, x)
    with tracker:
        step()
    theirs = sum(device["Total"] for device in tracker.get_tracker_snapshot("peak").values())
    assert mine == theirs > 0
