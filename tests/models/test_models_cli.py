"""`gam-bench models` lists every model with its parameter count and backends."""

from __future__ import annotations

from gam_bench.cli.main import main
from gam_bench.models import available, build, get_spec


def test_models_command_lists_every_model(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith("│")}
    assert set(lines) == set(available())
    for name in ("gam", "transformer", "mamba-paper"):
        spec = get_spec(name)
        count = sum(p.numel() for p in build(name).parameters())
        assert f"{count / 1e6:.2f}M" in lines[name]
        assert spec.family in lines[name]
        assert ", ".join(spec.backends()) in lines[name]
    assert "reference, fused" in lines["gam"] and "naive, sdpa" in lines["transformer"]
    mamba_backends = "torch, mamba-ssm" if get_spec("mamba").backends() != ["torch"] else "torch"
    assert mamba_backends in lines["mamba"]
