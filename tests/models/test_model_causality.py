"""Causality of every registered model: tokens after t never change logits at positions <= t."""

from __future__ import annotations

import pytest
import torch

from gam_bench.models import available, build, build_block, get_spec


@pytest.mark.parametrize("name", available())
def test_lm_is_causal(name, tiny):
    model = build(name, **tiny(name)).eval()
    V, T = tiny(name)["vocab_size"], 24
    idx = torch.randint(0, V, (2, T))
    with torch.no_grad():
        base = model(idx)
        for t in (0, 7, 16, T - 2):
            changed = idx.clone()
            changed[:, t + 1 :] = (changed[:, t + 1 :] + 1 + torch.randint(0, V - 1, (2, T - t - 1))) % V
            out = model(changed)
            torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1], rtol=0, atol=1e-6)
            # ...and the change is visible afterwards, so the check above can fail.
            assert not torch.allclose(out[:, t + 1 :], base[:, t + 1 :])


@pytest.mark.parametrize("name", [n for n in available() if get_spec(n).block_cls is not None])
def test_block_is_causal(name, tiny):
    block = build_block(name, **tiny(name)).eval()
    x = torch.randn(2, 20, tiny(name)["d_model"])
    with torch.no_grad():
        base = block(x)
        changed = x.clone()
        changed[:, 10:] = torch.randn(2, 10, x.shape[-1])
        out = block(changed)
    torch.testing.assert_close(out[:, :10], base[:, :10], rtol=0, atol=1e-6)
    assert not torch.allclose(out[:, 10:], base[:, 10:])
