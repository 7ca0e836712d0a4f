"""The console script's exit: `os._exit` with main's code (stdout and stderr flushed first) once
torch is imported, whose interpreter teardown is slow; a normal SystemExit otherwise; and a
real `python -m gam_bench run` still prints its summary, stores its rows and exits 0."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch  # noqa: F401 - entry() looks for it in sys.modules

from gam_bench import store
from gam_bench.cli import main as cli


class _Exited(Exception):
    pass


def test_entry_flushes_and_exits_at_once_when_torch_is_imported(monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "main", lambda: 3)
    monkeypatch.setattr(sys.stdout, "flush", lambda: calls.append("stdout"))
    monkeypatch.setattr(sys.stderr, "flush", lambda: calls.append("stderr"))

    def fake_exit(code):
        calls.append(code)
        raise _Exited

    monkeypatch.setattr(cli.os, "_exit", fake_exit)
    with pytest.raises(_Exited):
        cli.entry()
    assert calls == ["stdout", "stderr", 3]


def test_entry_exits_normally_without_torch(monkeypatch):
    monkeypatch.setattr(cli, "main", lambda: 2)
    monkeypatch.delitem(sys.modules, "torch")
    monkeypatch.setattr(cli.os, "_exit", lambda code: pytest.fail("os._exit without torch"))
    with pytest.raises(SystemExit) as exc:
        cli.entry()
    assert exc.value.code == 2


def test_a_real_run_prints_stores_and_exits_zero(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\nmodels: [gam]\naxes: {seq_len: [8], batch_size: 1, d_model: 16}\nlevel: block\n"
        "mode: forward\ndevice: cpu\nthreads: 1\nmeasure: {warmup: 0, repeats: 1, flops: false}\n"
    )
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "gam_bench", "run", str(suite), "--out", str(out), "--no-report"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "s: 1 cells run" in done.stdout  # the summary table's title, flushed before the exit
    assert store.load(out)["status"].tolist() == ["ok"]
