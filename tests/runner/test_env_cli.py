"""`gam-bench env` shows what runs record: device, versions, threads, backends per model."""

from __future__ import annotations

import subprocess
import sys

import torch


def test_env_prints_device_versions_threads_and_backends(cli_env):
    proc = subprocess.run(
        [sys.executable, "-m", "gam_bench", "env", "--device", "cpu"],
        env={**cli_env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for field in ("device", "device_name", "torch_version", "cpu_model", "threads", "hostname", "git_sha"):
        assert field in out
    assert torch.__version__ in out
    assert "gam" in out and "reference" in out  # a model and one of its backends
