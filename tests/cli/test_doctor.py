"""`gam-bench doctor` on the CPU: the table, exit 0 when a suite's models run, 1 when one cannot."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from gam_bench.cli.main import main

RUNNER_TESTS = Path(__file__).resolve().parent.parent / "runner"


@pytest.fixture
def suite(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(RUNNER_TESTS))  # faulty_models, the runner tests' plugin

    def write(models: str) -> Path:
        path = tmp_path / "suite.yaml"
        body = f"""\
            name: doctor-test
            plugins: [faulty_models]
            device: cpu
            models: {models}
            axes: {{seq_len: [8], batch_size: 1}}
            level: block
            mode: forward_backward
            dtype: float32
            """
        path.write_text(textwrap.dedent(body))
        return path

    return write


def test_doctor_ok_for_a_suite_whose_models_run(suite, capsys):
    assert main(["doctor", "--suite", str(suite("[test-tiny, gam]")), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    for check in (
        "device",
        "torch",
        "sdpa kernels",
        "mamba-ssm",
        "mamba-ssm ssd",
        "causal-conv1d",
        "fla",
        "fused CPU scan",
        "memory cap",
        "model gam",
    ):
        assert check in out
    assert "model test-tiny" in out and "error" not in out


def test_doctor_exits_1_when_a_suite_model_cannot_run(suite, capsys):
    assert main(["doctor", "--suite", str(suite("[gam, test-raises]")), "--device", "cpu"]) == 1
    out = capsys.readouterr().out
    assert "ValueError: this model always fails" in out and "model gam" in out


def test_doctor_mamba_row_says_why():
    from gam_bench.cli import doctor

    status, detail = doctor.tiny_cell("mamba", {}, "cpu", "float32")
    assert status == "ok" and "inputs on cpu" in detail


def test_doctor_unknown_device_is_a_user_error(capsys):
    if "torch" in sys.modules and __import__("torch").cuda.is_available():
        pytest.skip("CUDA present")
    assert main(["doctor", "--device", "cuda"]) == 2
    assert "not available" in capsys.readouterr().err


def test_doctor_reports_the_memory_cap_run_uses(tmp_path):
    """One source of truth: without --suite the cap is every suite's default (suite.Limits), and
    with one it is the cap its cells get for the device (their `limits`)."""
    from gam_bench.cell import expand
    from gam_bench.cli.doctor import _needs
    from gam_bench.settings import Limits
    from gam_bench.suite import load_suite

    assert _needs(None, "cpu")[2:] == (Limits().mem_cap_fraction, Limits().mem_cap_gb)
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\nmodels: [gam]\naxes: {seq_len: [8]}\nlimits: {mem_cap_fraction: 0.5}\n"
        "profiles: {cpu: {limits: {mem_cap_fraction: 0.6}}}\n"
    )
    cell = expand(load_suite(suite), "cpu", threads=1)[0]
    assert _needs(str(suite), "cpu")[2:] == (cell.limits.mem_cap_fraction, cell.limits.mem_cap_gb) == (0.6, None)
