"""Every registered model runs forward and backward on CPU, finite, and is deterministic."""

from __future__ import annotations

import pytest
import torch

from gam_bench.models import available, build, build_block, get_spec

MODELS = available()
BLOCK_MODELS = [n for n in MODELS if get_spec(n).block_cls is not None]


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward_is_finite_and_reaches_every_parameter(name, tiny):
    model = build(name, **tiny(name, dropout=0.1)).train()
    idx = torch.randint(0, 97, (2, 33))
    logits = model(idx)
    assert logits.shape == (2, 33, 97) and logits.isfinite().all()
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), idx.flatten()).backward()
    for key, p in model.named_parameters():
        assert p.grad is not None and p.grad.isfinite().all(), key
        assert p.grad.abs().sum() > 0, key
    assert isinstance(model.backend, str) and model.backend


@pytest.mark.parametrize("name", MODELS)
def test_deterministic_under_a_seed(name, tiny):
    def run():
        torch.manual_seed(7)
        model = build(name, **tiny(name, dropout=0.1)).train()  # dropout active: same masks too
        return model(torch.arange(40).view(2, 20) % 97)

    torch.testing.assert_close(run(), run(), rtol=0, atol=0)


@pytest.mark.parametrize("name", BLOCK_MODELS)
def test_block_maps_btd_to_btd(name, tiny):
    block = build_block(name, **tiny(name))
    x = torch.randn(3, 17, tiny(name)["d_model"], requires_grad=True)
    y = block(x)
    assert y.shape == x.shape and y.isfinite().all()
    y.sum().backward()
    assert x.grad.isfinite().all()
    assert block.backend == build(name, **tiny(name)).backend


@pytest.mark.parametrize("name", MODELS)
def test_bfloat16_autocast_runs(name, tiny):
    model = build(name, **tiny(name))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(torch.randint(0, 97, (2, 16)))
    assert logits.isfinite().all()


@pytest.mark.parametrize("name", ["gam", "transformer", "mamba-paper"])
def test_longer_than_max_seq_len_is_a_clear_error(name, tiny):
    model = build(name, **tiny(name, max_seq_len=8))
    with pytest.raises(ValueError, match="max_seq_len=8"):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_standard_mamba_has_no_length_cap(tiny):
    model = build("mamba", **tiny("mamba", max_seq_len=8))
    assert model(torch.zeros(1, 20, dtype=torch.long)).shape == (1, 20, 97)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", MODELS)
def test_runs_on_cuda(name, tiny):
    model = build(name, **tiny(name)).cuda()
    assert model(torch.randint(0, 97, (2, 16), device="cuda")).isfinite().all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mamba_ssm_backend_matches_torch_backend(tiny):
    from gam_bench.models.backends import mamba_ssm_available

    if not mamba_ssm_available():
        pytest.skip("mamba-ssm is not installed")
    torch_model = build("mamba", **tiny("mamba", backend="torch")).cuda()
    kernel_model = build("mamba", **tiny("mamba", backend="mamba-ssm")).cuda()
    kernel_model.load_state_dict(torch_model.state_dict())
    assert kernel_model.backend == "mamba-ssm" and torch_model.backend == "torch-chunked-scan"
    idx = torch.randint(0, 97, (2, 100), device="cuda")
    torch.testing.assert_close(kernel_model(idx), torch_model(idx), rtol=1e-3, atol=1e-3)
