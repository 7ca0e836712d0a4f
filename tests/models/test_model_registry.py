"""The registry: decorator registration, entry-point plugins, backends, error messages."""

from __future__ import annotations

import sys
import textwrap
from importlib.metadata import EntryPoint

import pytest
import torch
from torch import nn

from gam_bench.errors import UserError
from gam_bench.models import available, build, build_block, get_spec, make_config, register_model, registry
from gam_bench.models.backends import mamba_ssm_available
from gam_bench.models.config import LMConfig


@pytest.fixture
def isolated_registry(monkeypatch):
    """A private copy of the registry, so test-only models never leak into other tests. The
    built-ins are loaded first: a module registers its models only the first time it is imported."""
    for name in registry.MODELS.lazy:
        get_spec(name)
    monkeypatch.setattr(registry, "MODELS", registry.MODELS.copy())
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    return monkeypatch


class ToyConfig(LMConfig):
    width_mult: int = 2


class ToyBlock(nn.Module):
    backend = "toy"

    def __init__(self, config):
        super().__init__()
        self.proj = nn.Linear(config.d_model, config.d_model)

    def forward(self, x):
        return x + self.proj(x)


class ToyLM(nn.Module):
    backend = "toy"

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.emb = nn.Embedding(config.vocab_size, config.d_model)
        self.out = nn.Linear(config.d_model, config.vocab_size)

    def forward(self, idx):
        return self.out(self.emb(idx))


def test_decorator_registers_a_model(isolated_registry):
    register_model(
        "toy",
        family="toy",
        config=ToyConfig,
        block=ToyBlock,
        defaults={"d_model": 8},
        backends=lambda: ["toy"],
        description="a toy",
    )(ToyLM)
    assert "toy" in available()
    model = build("toy", vocab_size=11)
    assert isinstance(model, ToyLM) and model.config.d_model == 8 and model.config.vocab_size == 11
    assert model(torch.zeros(1, 3, dtype=torch.long)).shape == (1, 3, 11)
    assert build_block("toy", d_model=4)(torch.zeros(2, 3, 4)).shape == (2, 3, 4)
    spec = get_spec("toy")
    assert (spec.family, spec.description, spec.backends()) == ("toy", "a toy", ["toy"])


def test_registering_a_taken_name_with_another_class_fails(isolated_registry):
    get_spec("gam")  # the built-in is registered
    with pytest.raises(ValueError, match="already registered"):
        register_model("gam", family="toy", config=ToyConfig)(ToyLM)
    isolated_registry.setattr(registry.MODELS, "entries", {})  # as if gam.py was not imported yet
    with pytest.raises(ValueError, match="built-in name"):
        register_model("gam", family="toy", config=ToyConfig)(ToyLM)


def _plugin_module(tmp_path, monkeypatch, name: str, body: str) -> str:
    module = f"gam_bench_test_plugin_{name}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    return module


def test_entry_point_plugin_is_discovered_and_built(isolated_registry, tmp_path):
    module = _plugin_module(
        tmp_path,
        isolated_registry,
        "ok",
        """
        from torch import nn
        from gam_bench.models import register_model
        from gam_bench.models.config import LMConfig

        @register_model("plugged", family="plugin", config=LMConfig, description="from a plugin")
        class Plugged(nn.Module):
            backend = "plugin"
            def __init__(self, config):
                super().__init__()
                self.emb = nn.Embedding(config.vocab_size, config.d_model)
            def forward(self, idx):
                return self.emb(idx) @ self.emb.weight.T
    """,
    )
    ep = EntryPoint(name="plugged", value=module, group=registry.ENTRY_POINT_GROUP)
    isolated_registry.setattr(registry, "_plugin_entry_points", lambda: [ep])
    assert "plugged" in available()  # listed before anything is imported
    assert module not in sys.modules
    model = build("plugged", vocab_size=13, d_model=4)
    assert model(torch.zeros(2, 5, dtype=torch.long)).shape == (2, 5, 13)
    assert get_spec("plugged").description == "from a plugin"


def test_broken_plugin_is_a_user_error_naming_it(isolated_registry, tmp_path):
    module = _plugin_module(tmp_path, isolated_registry, "broken", "raise RuntimeError('boom')\n")
    ep = EntryPoint(name="broken", value=module, group=registry.ENTRY_POINT_GROUP)
    isolated_registry.setattr(registry, "_plugin_entry_points", lambda: [ep])
    with pytest.raises(UserError, match="'broken'.*boom"):
        build("broken")


def test_unknown_model_suggests_the_closest_and_lists_all():
    with pytest.raises(UserError) as err:
        build("tranformer")
    message = str(err.value)
    assert "(did you mean 'transformer'?)" in message
    assert all(name in message for name in available())
    assert "\n" not in message


def test_unknown_field_suggests_the_closest_and_lists_valid_fields():
    with pytest.raises(UserError) as err:
        build("gam", num_memory_slot=8)
    message = str(err.value)
    assert "'num_memory_slot'" in message and "(did you mean 'num_memory_slots'?)" in message
    fields = ("vocab_size", "max_seq_len", "d_model", "n_layers", "dropout", "conv_kernel_size")
    assert all(field in message for field in fields)
    with pytest.raises(UserError, match="n_heads"):
        make_config("gam", n_heads=4)  # a Transformer field is not a GAM field


@pytest.mark.parametrize(
    "name, overrides, fragment",
    [
        ("gam", {"d_model": 0}, "d_model: Input should be greater than or equal to 1 (got 0)"),
        ("gam", {"impl": "fast"}, "impl: Input should be 'reference' or 'fused' (got 'fast')"),
        ("transformer", {"d_model": 30}, "not divisible by n_heads=8"),
        (
            "mamba",
            {"backend": "cuda"},
            "backend: Input should be 'auto', 'torch', 'cpu-fused' or 'mamba-ssm' (got 'cuda')",
        ),
    ],
)
def test_invalid_values_are_one_line_user_errors(name, overrides, fragment):
    with pytest.raises(UserError) as err:
        make_config(name, **overrides)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_variants_differ_only_in_their_defaults():
    assert make_config("gam-global-only").fusion == "global"
    assert make_config("gam-local-only").fusion == "local"
    assert make_config("gam-sum-fusion").fusion == "sum"
    assert make_config("transformer").impl == "sdpa" and make_config("transformer-naive").impl == "naive"
    assert make_config("gam-sum-fusion", fusion="gated") == make_config("gam")


def test_backends_callables_list_what_runs_here():
    assert get_spec("gam").backends() == ["reference", "fused"]
    assert get_spec("transformer").backends() == ["naive", "sdpa"]
    from gam_bench.models import cpu_scan

    expected = ["torch"] + ["cpu-fused"] * cpu_scan.available() + ["mamba-ssm"] * mamba_ssm_available()
    assert get_spec("mamba").backends() == expected == get_spec("mamba-paper").backends()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_requesting_mamba_ssm_without_cuda_is_an_error_not_a_fallback(tiny):
    with pytest.raises(UserError, match="backend='mamba-ssm'"):
        build("mamba", **tiny("mamba", backend="mamba-ssm"))
    from gam_bench.models import cpu_scan

    auto = "cpu-fused-scan" if cpu_scan.available() else "torch-chunked-scan"
    assert build("mamba", **tiny("mamba", backend="auto")).backend == auto
    assert build_block("mamba-paper", **tiny("mamba", backend="torch")).backend == "torch-chunked-scan"
