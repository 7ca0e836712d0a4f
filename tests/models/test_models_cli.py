"""`gam-bench models` lists every model with its parameter count and backends."""

from __future__ import annotations

from gam_bench.cli.main import main
from gam_bench.models import available, build, get_spec


def test_models_command_lists_every_model(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in out.splitlines() if line.startswith("│")]
    cells = {row[0]: row for row in rows}  # model -> [model, family, params, backends, description]
    assert set(cells) == set(available())
    for name in ("gam", "transformer", "mamba-paper", "mamba2"):
        spec = get_spec(name)
        count = sum(p.numel() for p in build(name).parameters())
        assert cells[name][1:4] == [spec.family, f"{count / 1e6:.2f}M", ", ".join(spec.backends())]
    assert cells["gam"][3] == "reference, fused" and cells["transformer"][3] == "naive, sdpa"
    assert cells["mamba"][3] == ", ".join(get_spec("mamba").backends())
    assert cells["mamba"][3] in ("torch", "torch, cpu-fused", "torch, mamba-ssm", "torch, cpu-fused, mamba-ssm")
    assert cells["mamba2"][3] == ", ".join(get_spec("mamba2").backends())
    assert cells["mamba2"][3] in ("torch", "torch, cpu-fused", "torch, mamba-ssm", "torch, cpu-fused, mamba-ssm")
    assert cells["gated-deltanet"][3] in ("torch", "torch, cpu-fused", "torch, fla", "torch, cpu-fused, fla")
