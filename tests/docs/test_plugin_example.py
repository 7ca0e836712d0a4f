"""The docs' plugin example (examples/plugin/) is complete and runnable: its model is causal,
its suite runs end to end beside a built-in model, and `gam-bench models` lists it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from gam_bench import store
from gam_bench.cli.main import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "plugin"


@pytest.fixture
def conv_mixer(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import conv_mixer  # stays imported: the registry keeps its classes, and the suite reuses it

    return conv_mixer


def test_the_docs_page_shows_the_example_files():
    page = (REPO / "docs" / "guides" / "models.md").read_text()
    assert '--8<-- "examples/plugin/conv_mixer.py"' in page and '--8<-- "examples/plugin/suite.yaml"' in page


def test_example_model_is_causal(conv_mixer):
    from gam_bench.models import build, build_block

    torch.manual_seed(0)
    lm = build("conv-mixer", d_model=16, n_layers=2, vocab_size=32, max_seq_len=24, kernel_size=3).eval()
    idx = torch.randint(0, 32, (2, 24))  # (B, T)
    changed = idx.clone()
    changed[:, 12] = (changed[:, 12] + 1) % 32
    out, out_changed = lm(idx), lm(changed)  # (B, T, V)
    assert torch.equal(out[:, :12], out_changed[:, :12])
    assert not torch.allclose(out[:, 12:], out_changed[:, 12:])
    block = build_block("conv-mixer", d_model=16, kernel_size=3).eval()
    x = torch.randn(2, 24, 16)  # (B, T, D)
    y = x.clone()
    y[:, 20] += 1
    assert torch.equal(block(x)[:, :20], block(y)[:, :20])


def test_example_suite_runs_end_to_end(tmp_path):
    out = tmp_path / "rows"
    assert main(["run", str(EXAMPLE / "suite.yaml"), "--out", str(out), "--no-progress"]) == 0
    rows = store.load(out)
    assert set(rows["model"]) == {"conv-mixer", "gam"}
    assert (rows["status"] == "ok").all() and len(rows) == 4
    mixer = rows[rows["model"] == "conv-mixer"]
    assert set(mixer["backend"]) == {"torch"} and (mixer["time_ms"] > 0).all()
    assert (mixer["peak_tensor_bytes"] > 0).all()


@pytest.mark.parametrize("how", [["--suite", str(EXAMPLE / "suite.yaml")], ["--plugin", "conv_mixer"]])
def test_models_command_lists_the_plugin(how, tmp_path):
    """In a fresh process (nothing imported it before): by the suite's plugins or by module name."""
    import subprocess

    command = [sys.executable, "-m", "gam_bench", "models", *how]
    result = subprocess.run(command, cwd=EXAMPLE, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert any(line.startswith("│ conv-mixer ") for line in result.stdout.splitlines()), result.stdout


def test_models_command_unknown_plugin_is_one_line(capsys):
    assert main(["models", "--plugin", "no_such_plugin_module"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--plugin: cannot import 'no_such_plugin_module'" in err
