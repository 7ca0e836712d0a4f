"""Causal long convolution, per channel, with a filter as long as the sequence (Hyena's,
arXiv 2302.10866):

    y[b, d, t] = sum_{s <= t} k[d, t - s] u[b, d, s]        u (B, D, T), k (D, T) -> y (B, D, T)

`fft_conv` (the default): zero-pad both to 2T, multiply their real FFTs, invert, keep the
first T outputs: O(T log T). The FFTs run in float32 (float64 stays float64); y is in u's
dtype. FlopCounterMode does not see FFTs, so their FLOPs are added by formula
(`gam_bench.models.flop_count`).
`direct_conv` is the reference twin: the same sum as a depthwise Conv1d with T-1 zeros in
front and the filter reversed, O(T^2).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from gam_bench.models.flop_count import counted


def fft_conv(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Causal long convolution by FFT: u (B, D, T), k (D, T) -> (B, D, T)."""
    B, D, T = u.shape
    n = 2 * T
    compute = torch.promote_types(u.dtype, torch.float32)
    with torch.autocast(u.device.type, enabled=False):
        u_f = torch.fft.rfft(u.to(compute), n=n)  # (B, D, T + 1)
        k_f = torch.fft.rfft(k.to(compute), n=n)  # (D, T + 1)
        y = torch.fft.irfft(u_f * k_f, n=n)[..., :T]  # (B, D, T)
        y = counted(y, *fft_conv_flops(B, D, T))
    return y.to(u.dtype)


def direct_conv(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The reference: y_t = sum_{s <= t} k_{t-s} u_s as a depthwise Conv1d, u (B, D, T), k (D, T) -> (B, D, T)."""
    T = u.shape[-1]
    weight = k.flip(-1).unsqueeze(1).to(u.dtype)  # (D, 1, T): conv1d correlates, so reverse the filter
    return F.conv1d(F.pad(u, (T - 1, 0)), weight, groups=u.shape[1])


def fft_conv_flops(B: int, D: int, T: int) -> tuple[int, int]:
    """(forward, backward) FLOPs of fft_conv: a real FFT of n = 2T points costs 2.5 n log2 n
    (half the 5 n log2 n of a complex one); forward is the input's and the filter's FFTs, a
    complex product (6 per frequency) and an inverse FFT; backward the same work for each
    of the two gradients."""
    n = 2 * T
    fft = int(2.5 * n * math.log2(n)) if n > 1 else 0
    forward = B * D * (2 * fft + 6 * (n // 2 + 1)) + D * fft
    return forward, 2 * forward
