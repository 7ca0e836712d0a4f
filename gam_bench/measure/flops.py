"""FLOPs of one step, counted by torch.utils.flop_counter.FlopCounterMode, comparable across
devices and backends.

The counter sees matmul-like ops (mm, bmm, addmm, convolution, SDPA, ...) in forward and
backward; elementwise ops (softmax, GELU, the optimizer update) are not counted. The
counted step runs for real, so it is done outside the timed steps.

torch's own table is patched for this count only (`custom_mapping`, nothing global):
- CPU SDPA (`_scaled_dot_product_flash_attention_for_cpu` and its backward) has no formula
  in torch, so SDPA on CPU counted only the projections (transformer 151 MFLOP against 352
  for transformer-naive at d=64, T=512, fwd+bwd; GAM fused 139 against 340 for reference).
  It gets torch's formula for the CUDA flash kernel: 2 matmuls forward over the full T x S
  scores (a causal mask is not discounted, as for naive attention's bmm).
- SDPA backward, every kernel (CPU, flash, efficient, cudnn): torch counts the kernels'
  recomputation of the scores (5 matmuls); the math has 4, which is what naive attention's
  backward counts, so the recomputation is left out: the same math gives the same count.
- `convolution_backward` ignores `groups` for the weight gradient, so a depthwise conv's
  backward counted `channels` times its real work (GAM, Mamba). Each requested gradient
  (input, weight) is counted as one forward convolution, which holds for any groups.

- `linalg_solve_triangular` (the gated delta rule's per-chunk WY solve) has no formula in
  torch, so it counted 0; forward substitution costs n^2 FLOPs per right-hand side (n^2 / 2
  multiply-adds), batch * n^2 * k in all. Its backward is another solve and a matmul.

Kernels outside the dispatcher are invisible: mamba-ssm's CUDA scan and causal-conv1d, and
the Triton kernels of mamba-ssm's SSD and of flash-linear-attention (GLA, RetNet, Gated DeltaNet).
Policy (`counts_every_kernel`): rows whose backend runs them get `flops` = None, never
a partial count; the torch backend of the same model is counted as seen.
Work the counter cannot see inside a torch path (the chunked GLA op's elementwise decay
weights, Hyena's FFTs) is added by formula: the model calls `gam_bench::flops(n)`, a no-op
whose registered formula is n (gam_bench.models.flop_count).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count, sdpa_backward_flop_count, sdpa_flop_count

aten = torch.ops.aten


def _conv_backward_flop(
    grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed, _out_pad, _groups, output_mask,
    *args, out_shape=None, **kwargs,
) -> int:  # fmt: skip
    """Each requested gradient of a convolution (input, weight) costs one forward convolution
    (conv_flop_count uses w_shape[1], the input channels per group, so groups are counted right)."""
    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed=transposed)
    return forward * sum(bool(m) for m in output_mask[:2])


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _sdpa_backward_flop(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """torch's SDPA backward count less its recomputation of the scores (q k^T): the 4 matmuls
    of attention's gradient, as naive attention's backward counts them."""
    b, h_q, s_q, d_q = query_shape
    s_k = key_shape[2]
    recompute = 2 * b * h_q * s_q * d_q * s_k
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape) - recompute


def _solve_triangular_flop(a_shape, b_shape, *args, out_shape=None, left=True, **kwargs) -> int:
    """A (..., n, n) triangular, B (..., n, k) (left) or (..., k, n): batch * n^2 * k."""
    n = a_shape[-1]
    rhs = b_shape[-1] if left else b_shape[-2]
    batch = 1
    for size in (out_shape or b_shape)[:-2]:
        batch *= size
    return batch * n * n * rhs


FORMULAS = {
    aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flop,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_backward_flop,
    aten._scaled_dot_product_flash_attention_backward: _sdpa_backward_flop,
    aten._scaled_dot_product_efficient_attention_backward: _sdpa_backward_flop,
    aten._scaled_dot_product_cudnn_attention_backward: _sdpa_backward_flop,
    aten.convolution_backward: _conv_backward_flop,
    aten.linalg_solve_triangular: _solve_triangular_flop,
}

# Backends whose kernels run outside torch's dispatcher, so FlopCounterMode cannot count them.
UNCOUNTED_BACKENDS = ("mamba-ssm", "fla")


def counts_every_kernel(backend: str) -> bool:
    """False for a backend (the row's `backend` column) whose kernels the counter cannot see."""
    return not any(backend.startswith(name) for name in UNCOUNTED_BACKENDS)


def count_flops(step: Callable[[], object]) -> int:
    """Run `step` once under a FLOP counter; return its total FLOPs."""
    counter = FlopCounterMode(display=False, custom_mapping=FORMULAS)
    with counter:
        step()
    return int(counter.get_total_flops())
