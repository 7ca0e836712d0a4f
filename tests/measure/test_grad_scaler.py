"""float16 steps: a GradScaler keeps fwd+bwd gradients from underflowing; train_step uses it."""

from __future__ import annotations

import torch
from torch import nn

from gam_bench.training import step


def test_make_scaler_only_for_float16():
    assert step.make_scaler("float32", "cpu") is None
    assert step.make_scaler(torch.bfloat16, "cpu") is None
    scaler = step.make_scaler("float16", "cpu")
    assert isinstance(scaler, torch.amp.GradScaler) and scaler.is_enabled()


def _half_grads(scaler):
    """A float32 mean loss (as the throughput task's block step) of float16 activations, as at
    long lengths: d(loss)/d(x) = 2**-26 per element, below float16's smallest subnormal
    (2**-24), so it flushes to zero unscaled; returns x's gradient (unscaled if scaled)."""
    x = torch.ones(4096, dtype=torch.float16, requires_grad=True)
    loss = x.float().mean() * 2.0**-14  # 1/4096 * 2**-14 = 2**-26 per element
    step.backward(loss, scaler)
    grad = x.grad.float()
    return grad / scaler.get_scale() if scaler is not None else grad


def test_unscaled_float16_gradient_underflows_and_scaled_does_not():
    assert torch.count_nonzero(_half_grads(None)) == 0
    scaled = _half_grads(step.make_scaler("float16", "cpu"))
    assert torch.allclose(scaled, torch.full_like(scaled, 2.0**-26), rtol=1e-3)


def test_train_step_uses_the_scaler():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(11, 8), nn.Linear(8, 11))
    optimizer = step.make_optimizer(model)
    scaler = step.make_scaler("float16", "cpu")
    calls = []
    for name in ("scale", "unscale_", "step", "update"):
        real = getattr(scaler, name)
        setattr(scaler, name, lambda *a, _real=real, _name=name, **k: (calls.append(_name), _real(*a, **k))[1])
    idx = torch.randint(0, 11, (2, 9))
    before = [p.detach().clone() for p in model.parameters()]
    step.train_step(model, optimizer, idx[:, :-1], idx[:, 1:], scaler=scaler)
    assert calls == ["scale", "unscale_", "step", "update"]
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
